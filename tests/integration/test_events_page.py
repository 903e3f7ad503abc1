"""`/events` against a real worker: a task's events are listed newest first, filters narrow them, the live
fragment and the waiting counter see only newer rows, bad parameters are 400s, hostile args stay text."""
from __future__ import annotations

import html
import re
import urllib.parse

import pytest

from tests import celeryapp as tasks
from tests.support.waiting import wait_for
from webui.store.event_queries import Cursor

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'


def events_of(body: str, task_id: str) -> list[str]:
    """The event types listed for `task_id`, in page order."""
    rows = re.findall(r'<tr class="event-row".*?</tr>', body, re.S)
    return [re.search(r'class="badge etype[^"]*">([a-z-]+)<', row).group(1) for row in rows if task_id in row]


def page_when(server, path: str, ready, timeout: float = 20):
    def check():
        response = server.get(path)
        return response if response.status == 200 and ready(response.body) else None
    return wait_for(check, timeout=timeout, message=f"{path} never got ready")


def test_a_tasks_events_are_listed_newest_first_with_links(server):
    result = tasks.add.delay(1, 2)
    # task-sent travels from this client apart from the worker's events and may arrive after any of them.
    body = page_when(server, "/events", lambda b: len(events_of(b, result.id)) == 4).body
    listed = events_of(body, result.id)
    assert sorted(listed) == ["task-received", "task-sent", "task-started", "task-succeeded"]
    assert [e for e in listed if e != "task-sent"] == ["task-succeeded", "task-started", "task-received"]
    assert f'href="/task/{result.id}"' in body
    assert re.search(r'href="/worker/testworker-[^"]+"', body)
    assert "Worker heartbeats are not stored" in body and "since it started" in body


def test_filters_narrow_by_type_task_name_worker_and_window(server):
    added, failed = tasks.add.delay(2, 2), tasks.fail.delay("on purpose")
    everything = page_when(server, "/events", lambda b: "task-failed" in events_of(b, failed.id)
                           and "task-succeeded" in events_of(b, added.id)).body
    body = server.get("/events?type=task-failed&type=task-succeeded").body
    assert events_of(body, failed.id) == ["task-failed"] and events_of(body, added.id) == ["task-succeeded"]
    body = server.get("/events?task=tests.celeryapp.fail&since=5m").body
    assert events_of(body, failed.id) and not events_of(body, added.id)
    # Whichever worker ran it (other test sessions may share the broker).
    started = next(row for row in re.findall(r'<tr class="event-row".*?</tr>', everything, re.S)
                   if added.id in row and ">task-started<" in row)
    hostname = re.search(r'href="/worker/([^"]+)"', started).group(1)
    body = server.get(f"/events?worker={hostname}&type=task-started").body
    assert events_of(body, added.id) == ["task-started"]
    assert "etype-worker-online" not in body  # a task-started filter leaves the transitions out
    assert "No events match these filters" in server.get("/events?task=no.such.task").body


def test_worker_transitions_are_in_the_stream(server):
    body = page_when(server, "/events?type=worker-online", lambda b: "etype-worker-online" in b).body
    assert re.search(r'etype-worker-online">worker-online<.*?\{&#34;reason&#34;', body, re.S)


def test_the_live_fragment_and_the_counter_see_only_newer_rows(server):
    first = tasks.add.delay(3, 3)
    body = page_when(server, "/events", lambda b: "task-succeeded" in events_of(b, first.id)).body
    newest = re.search(r'data-key="([^"]+)"', body).group(1)
    assert server.get(f"/events/count?after={newest}").json() == {"count": 0, "capped": False}
    assert "<tr" not in server.get(f"/events/newer?after={newest}").body
    second = tasks.add.delay(4, 4)
    fragment = page_when(server, f"/events/newer?after={newest}",
                         lambda b: "task-succeeded" in events_of(b, second.id)).body
    assert not events_of(fragment, first.id)
    assert "<html" not in fragment and fragment.lstrip().startswith("<tr")
    assert server.get(f"/events/count?after={newest}").json()["count"] >= 4


def test_older_pages_follow_the_keyset(server):
    for i in range(30):
        tasks.add.delay(i, 1)
    body = page_when(server, "/events", lambda b: 'id="events-older"' in b and "hidden>Older" not in b).body
    keys = re.findall(r'data-key="([^"]+)"', body)
    assert len(keys) == 50
    assert [Cursor.decode(k) for k in keys] == sorted((Cursor.decode(k) for k in keys), reverse=True)
    older = html.unescape(re.search(r'id="events-older"[^>]*href="([^"]+)"', body).group(1))
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(older).query)["before"] == [keys[-1]]
    next_keys = re.findall(r'data-key="([^"]+)"', server.get(older).body)
    assert next_keys and not set(next_keys) & set(keys)
    assert Cursor.decode(next_keys[0]) < Cursor.decode(keys[-1])


@SQLITE_ONLY
@pytest.mark.parametrize(("query", "message"), [
    ("type=task-exploded", "Unknown event type"),
    ("type=task-sent&type=%3Cscript%3E", "Unknown event type"),
    ("before=not-a-cursor", "is not a position in the events stream"),
    ("before=t~1.5~1", "is not a position in the events stream"),
    ("before=t~inf~1~1", "not a position"),
    ("before=" + "t~1~1~1" * 20, "too long"),
    ("task=" + "x" * 300, "at most 255 characters"),
    ("worker=a%0Ab", "control characters"),
    ("since=3y", "Unknown time window"),
])
def test_bad_parameters_are_a_400_with_a_message(server, query, message):
    response = server.get(f"/events?{query}")
    assert response.status == 400
    assert message in html.unescape(response.body)
    assert "<script>" not in response.body
    for fragment in ("newer", "count"):
        assert server.get(f"/events/{fragment}?{query.replace('before=', 'after=')}").status == 400


def test_hostile_args_and_exceptions_render_as_text(server):
    result = tasks.fail.delay(XSS_SCRIPT + XSS_IMG)
    body = page_when(server, "/events", lambda b: "task-failed" in events_of(b, result.id)).body
    assert XSS_SCRIPT not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
