"""`/task/<id>` against a real worker: attempts, tracebacks, escaping, unknown and bad ids, workflows.

What reads the store runs on SQLite and PostgreSQL; rejecting a bad id needs no store: SQLite only.
"""
from __future__ import annotations

import html
import re
import uuid as uuidlib

import celery
import pytest

from tests import celeryapp as tasks
from tests.support.waiting import wait_for

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'



def page_when(server, task_id: str, text: str, timeout: float = 20):
    """The task page once it shows `text` (the collector writes every 0.1 s)."""
    def ready():
        response = server.get(f"/task/{task_id}")
        return response if response.status == 200 and text in response.body else None
    return wait_for(ready, timeout=timeout, message=f"/task/{task_id} never showed {text!r}")


def test_it_shows_each_attempt_of_a_task_retried_twice(server):
    result = tasks.retry_twice.delay()
    page = page_when(server, result.id, "SUCCESS")
    body = page.body
    assert [int(n) for n in re.findall(r'id="attempt-(\d+)"', body)] == [1, 2, 3]
    assert body.count('class="event event-retried"') == 2
    assert "done after 2 retries" in body
    # A retry is re-sent naming the task as its own parent; the page does not call that a workflow.
    assert re.search(r'id="workflow-parent"><span class="muted">none', body)
    assert re.search(r'id="workflow-children">\s*<span class="muted">none seen', body)
    assert f"<title>Task {result.id[:8]} · Celery WebUI</title>" in body


def test_a_failed_task_shows_its_exception_and_full_traceback(server):
    result = tasks.fail.delay("broken on purpose")
    body = page_when(server, result.id, "FAILURE").body
    assert 'id="traceback"' in body and 'data-copy-target="#traceback"' in body
    assert "Traceback (most recent call last)" in body
    assert "ValueError" in body and "broken on purpose" in body


def test_hostile_args_and_exception_render_as_text(server):
    payload = XSS_SCRIPT + XSS_IMG
    result = tasks.fail.delay(payload)
    body = page_when(server, result.id, "FAILURE").body
    assert XSS_SCRIPT not in body and "<img src=x" not in body
    assert html.escape(XSS_SCRIPT, quote=False) in body
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in body
    exception = re.search(r'<pre id="exception"[^>]*>(.*?)</pre>', body, re.S)
    args = re.search(r'<pre id="task-args">(.*?)</pre>', body, re.S)
    assert exception and "&lt;script&gt;" in exception.group(1)
    assert args and "&lt;script&gt;" in args.group(1)


def test_an_id_never_seen_is_unknown_to_this_monitor(server):
    response = server.get(f"/task/{uuidlib.uuid4()}")
    assert response.status == 404
    assert "unknown to this monitor" in response.body
    assert "events were off" in response.body


def test_a_sent_task_nobody_consumes_is_known_and_waiting(server):
    result = tasks.add.apply_async((1, 2), queue="nobody-consumes-this")
    body = page_when(server, result.id, "PENDING").body
    assert "known and waiting" in body and "unknown to this monitor" not in body


@SQLITE_ONLY
@pytest.mark.parametrize("bad_id", ["x" * 256, "abc%0Adef", "abc%00def"], ids=["too-long", "newline", "nul"])
def test_an_impossible_id_is_a_400_with_a_message(server, bad_id):
    response = server.get(f"/task/{bad_id}")
    assert response.status == 400
    assert "Bad task id" in response.body
    assert ("at most 255 characters" in response.body) or ("control characters" in response.body)


def test_a_chain_links_its_root_parent_and_child(server):
    result = celery.chain(tasks.add.s(1, 2), tasks.add.s(3)).apply_async()
    first, second = result.parent.id, result.id
    second_page = page_when(server, second, "SUCCESS").body
    first_page = page_when(server, first, f'href="/task/{second}"').body
    assert re.search(rf'id="workflow-parent">.*href="/task/{first}"', second_page, re.S)
    assert re.search(rf'id="workflow-root">.*href="/task/{first}"', second_page, re.S)
    assert re.search(r'id="workflow-root">this task', first_page)
    assert re.search(rf'id="workflow-children">.*href="/task/{second}"', first_page, re.S)
