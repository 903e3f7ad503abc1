"""`/tasks` against a real worker: filters, search, keyset pages, the new-tasks notice, exports, bad input."""
from __future__ import annotations

import csv
import html
import io
import json
import re
import uuid as uuidlib
from urllib.parse import urlencode

import pytest

from tests import celeryapp as tasks
from tests.support.waiting import wait_for

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'


def listed(server, **params) -> list[str]:
    """The task ids on the first page of `/tasks?params`, in order."""
    response = server.get("/tasks?" + urlencode(params, doseq=True))
    assert response.status == 200, response.body[:500]
    return re.findall(r'href="/task/([^"]+)"', response.body)


def wait_listed(server, task_id: str, **params) -> list[str]:
    return wait_for(lambda: (ids := listed(server, **params)) and task_id in ids and ids,
                    timeout=20, message=f"{task_id} never listed with {params}")


def test_filters_and_search_narrow_the_list_to_what_they_say(server):
    marker = f"needle-{uuidlib.uuid4().hex[:8]}"
    ok = tasks.add.delay(2, 3)
    failed = tasks.fail.delay(f"broken {marker}")
    slow = tasks.sleep.delay(1.2)
    retried = tasks.retry_twice.delay()
    for result in (ok, slow, retried):
        result.get(timeout=20)
    for result in (ok, slow, retried):
        wait_listed(server, result.id, state="SUCCESS")
    wait_listed(server, failed.id, state="FAILURE")

    failures = listed(server, state="FAILURE")
    assert failed.id in failures and ok.id not in failures
    assert set(listed(server, state=["FAILURE", "SUCCESS"])) >= {ok.id, failed.id, slow.id}
    assert listed(server, q=marker) == [failed.id]
    assert listed(server, q=marker.upper()) == [failed.id], "search ignores case"
    assert ok.id in listed(server, name="tests.celeryapp.add")
    assert failed.id not in listed(server, name="tests.celeryapp.add")
    # Another test session's worker may share the broker: take the worker the task really ran on.
    ran_on = {t["uuid"]: t["worker"] for t in json.loads(server.get("/tasks/export.json?runtime_min=1").body)}
    assert slow.id in listed(server, runtime_min="1", worker=ran_on[slow.id])
    assert slow.id not in listed(server, runtime_min="1", worker="nobody@nowhere")
    assert ok.id not in listed(server, runtime_min="1")
    assert listed(server, sort="slowest", state="SUCCESS")[0] == slow.id
    assert ok.id in listed(server, range="15m", time_field="finished")


def test_the_page_loads_how_many_tasks_match(server):
    marker = f"counted-{uuidlib.uuid4().hex[:8]}"
    results = [tasks.fail.delay(f"{marker} {i}") for i in range(3)]
    for result in results:
        wait_listed(server, result.id, q=marker)

    page = server.get(f"/tasks?q={marker}").body
    assert f'hx-get="/tasks/count?q={marker}"' in page
    fragment = server.get(f"/tasks/count?q={marker}").body
    assert "3 tasks match" in fragment and 'data-exact="true"' in fragment
    assert "1 task matches" in server.get(f"/tasks/count?q={marker}+0").body
    api = json.loads(server.get(f"/api/v1/tasks/count?q={marker}&state=FAILURE").body)
    assert api == {"count": 3, "exact": True, "capped": False, "label": "3"}
    assert json.loads(server.get("/api/v1/tasks/count?q=nothing-has-this-text").body)["count"] == 0


def test_pages_follow_one_another_without_gaps_or_repeats(server):
    sent = [tasks.add.delay(i, i) for i in range(7)]
    for result in sent:
        result.get(timeout=20)
    wait_listed(server, sent[-1].id, state="SUCCESS", name="tests.celeryapp.add")

    seen: list[str] = []
    url = "/tasks?" + urlencode({"name": "tests.celeryapp.add", "limit": "3"})
    while url:
        body = server.get(url).body
        seen += re.findall(r'href="/task/([^"]+)"', body)
        more = re.search(r'hx-get="(/tasks/rows\?[^"]+)"', body)
        url = html.unescape(more.group(1)) if more else ""
    assert seen[:7] == [r.id for r in reversed(sent)]
    assert len(seen) == len(set(seen))


def test_a_task_first_seen_after_the_page_loaded_is_announced(server):
    first = tasks.add.delay(1, 1)
    first.get(timeout=20)
    ids = wait_listed(server, first.id)
    newest = re.search(r"newest=(\d+)", server.get("/tasks").body)
    assert newest, "the first page asks for new tasks above its newest row"
    assert server.get(f"/tasks/new?newest={newest.group(1)}").body.strip() == ""

    tasks.add.delay(2, 2).get(timeout=20)
    notice = wait_for(lambda: (b := server.get(f"/tasks/new?newest={newest.group(1)}").body.strip()) and b,
                      timeout=20, message="no notice of the new task")
    assert "1 new task since this page loaded" in notice
    assert ids[0] == first.id


def test_exports_stream_every_match_as_csv_and_json(server):
    marker = f"export-{uuidlib.uuid4().hex[:8]}"
    results = [tasks.echo.delay(marker, n=i) for i in range(4)]
    for result in results:
        result.get(timeout=20)
    wait_for(lambda: len(listed(server, q=marker, state="SUCCESS")) == 4, timeout=20,
             message="echo tasks not all stored")

    response = server.get("/tasks/export.csv?" + urlencode({"q": marker}))
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert "attachment;" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.body)))
    assert [r["uuid"] for r in rows] == [r.id for r in reversed(results)]
    assert rows[1]["state"] == "SUCCESS" and rows[1]["finished_at"].endswith("+00:00")

    exported = json.loads(server.get("/tasks/export.json?" + urlencode({"q": marker})).body)
    assert [t["uuid"] for t in exported] == [r.id for r in reversed(results)]
    assert exported[-1]["kwargs"] == "{'n': 0}" and exported[-1]["name"] == "tests.celeryapp.echo"


@SQLITE_ONLY
def test_hostile_arguments_and_errors_render_as_text(server):
    failed = tasks.fail.delay(XSS_SCRIPT + XSS_IMG)
    wait_listed(server, failed.id, state="FAILURE")

    body = server.get("/tasks?state=FAILURE").body
    assert XSS_SCRIPT not in body and "<img src=x" not in body
    assert html.escape(XSS_SCRIPT, quote=False) in body


@SQLITE_ONLY
@pytest.mark.parametrize("query, message", [
    ("state=FINISHED", "Unknown state"),
    ("sort=random", "&#39;sort&#39; must be one of"),
    ("limit=100000", "&#39;limit&#39; must be between"),
    ("runtime_min=abc", "a number of seconds"),
    ("from=yesterday", "must be a time like"),
    ("cursor=1%3B%20DROP%20TABLE%20task", "not one this page made"),
    ("q=" + "x" * 300, "at most 200 characters"),
])
def test_a_bad_parameter_is_a_400_with_its_reason_on_every_route(server, query, message):
    page = server.get(f"/tasks?{query}")
    assert page.status == 400 and message in page.body and 'id="filter-problem"' in page.body
    assert server.get(f"/tasks/rows?{query}").status == 400
    export = server.get(f"/tasks/export.csv?{query}")
    assert export.status == 400 and html.unescape(message) in export.body
    assert server.get(f"/tasks/new?newest=1&{query}").status == 400
    assert server.get(f"/tasks/count?{query}").status == 400
    assert server.get(f"/api/v1/tasks/count?{query}").status == 400
