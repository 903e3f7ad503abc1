"""`/` against a real worker: successes, failures and retries end up in the per-minute rollups, and the overview
shows them (counts, the top failing task, the top exception), with hostile exception text as text.

On SQLite and PostgreSQL. The session worker's broker is shared with anyone else running the tests on this
Redis, so counts of our own tasks are checked as lower bounds; what must be exact is that the rollups agree with
the event log they were computed from, whoever sent the events.
"""
from __future__ import annotations

import re

from tests import celeryapp as tasks
from tests.support.store import StoreReader
from tests.support.waiting import wait_for

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
COUNTS = ("received", "started", "succeeded", "failed", "retried", "revoked", "rejected")


def wait_finished(store: StoreReader, *task_ids: str) -> None:
    def finished() -> bool:
        return all(store.state(t) in ("SUCCESS", "FAILURE") for t in task_ids)

    wait_for(finished, timeout=30, message=f"tasks not finished: {[store.state(t) for t in task_ids]}")


def card(body: str, window: str, label: str) -> int:
    section = re.search(rf'aria-label="{window}">(.*?)</section>', body, re.S)
    assert section, f"no {window} cards"
    value = re.search(rf'card-label">{label}</div><div class="card-value">(\d+)<', section.group(1))
    assert value, f"no {label} card in {window}"
    return int(value.group(1))


def rollup(store: StoreReader, name: str) -> dict[str, int]:
    row = store.rows(f"SELECT {', '.join(f'SUM({c}) AS {c}' for c in COUNTS)} FROM task_minute WHERE name = ?",
                     (name,))[0]
    return {c: int(row[c] or 0) for c in COUNTS}


def test_the_overview_shows_what_a_real_worker_did_from_the_rollups(server, store):
    ok = [tasks.add.delay(i, i) for i in range(3)]
    failed = [tasks.fail.delay(f"boom {i}") for i in range(4)]
    retried = tasks.retry_twice.delay()
    wait_finished(store, *(r.id for r in ok + failed), retried.id)
    hostile = tasks.fail.delay(XSS)  # last, so it is the latest ValueError the page quotes
    wait_finished(store, hostile.id)

    def page_with_the_hostile_failure() -> str | None:
        body = server.get("/").body
        return body if XSS_ESCAPED in body else None

    body = wait_for(page_with_the_hostile_failure, timeout=20, message="the hostile failure never reached /")
    assert XSS not in body  # text, not markup
    assert card(body, "Last hour", "Succeeded") >= 4 and card(body, "Last hour", "Failed") >= 5
    assert card(body, "Last hour", "Retried") >= 2 and card(body, "Last 24 hours", "Received") >= 11
    failing = re.search(r'id="ov-failing".*?<td class="ov-name">(.*?)</td><td class="num bad">(\d+)<', body, re.S)
    assert failing and failing.group(1) == "tests.celeryapp.fail" and int(failing.group(2)) >= 5
    top_exception = re.search(r'<code class="ov-exc-class">(.*?)</code>\s*<span class="ov-count">(\d+)', body)
    assert top_exception and top_exception.group(1) == "ValueError" and int(top_exception.group(2)) >= 5
    assert f'href="/task/{hostile.id}"' in body  # the feed and the exception link to the task
    assert "No task finished in the last hour." not in body and 'class="bar-bad"' in body
    sections = server.get("/overview/sections")
    assert sections.status == 200 and XSS_ESCAPED in sections.body and "<html" not in sections.body

    server.stop(grace=10)  # the store holds still from here: rollups and the event log can be compared exactly
    add, fail, retry = (rollup(store, f"tests.celeryapp.{n}") for n in ("add", "fail", "retry_twice"))
    assert add["received"] >= 3 and add["started"] >= 3 and add["succeeded"] >= 3 and add["failed"] == 0
    assert fail["received"] >= 5 and fail["failed"] >= 5 and fail["succeeded"] == 0
    assert retry["received"] >= 3 and retry["started"] >= 3 and retry["retried"] >= 2 and retry["succeeded"] >= 1
    logged = {row["type"]: int(row["n"]) for row in store.rows(
        "SELECT type, COUNT(*) AS n FROM task_event WHERE source IS NULL GROUP BY type")}
    totals = store.rows(f"SELECT {', '.join(f'SUM({c}) AS {c}' for c in COUNTS)} FROM task_minute")[0]
    assert {c: int(totals[c] or 0) for c in COUNTS} == {c: logged.get(f"task-{c}", 0) for c in COUNTS}
    histogram = store.scalar("SELECT SUM(" + " + ".join(f"rt_b{i:02d}" for i in range(17)) + ") FROM task_minute")
    assert int(histogram) == store.scalar("SELECT SUM(runtime_count) FROM task_minute") >= 4
