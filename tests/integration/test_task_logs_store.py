"""Task logs in the store (webui.collector.task_logs): the collector's writer stores the companion's `task-log`
records by attempt, once each, masked, apart from the event log; retention deletes them with the task's events.
On SQLite and PostgreSQL (the insert is SQL of each)."""
from __future__ import annotations

import time
from typing import Any

from tests.integration.test_retention import DAY, event, rows, run_writer
from webui.store import retention
from webui.store.retention import Retention


def log_record(uuid: str, seq: int, message: str, ts: float, retries: int = 0, **fields: Any) -> dict[str, Any]:
    """As webui.agent.records.log_line builds it."""
    return {"type": "task-log", "uuid": uuid, "hostname": "w1@test", "timestamp": ts, "pid": 4242, "clock": None,
            "source": "agent", "retries": retries, "seq": seq, "at": ts, "level": "INFO", "logger": "proj.tasks",
            "message": message, **fields}


def logs(db: Any, uuid: str) -> list[tuple[Any, ...]]:
    return rows(db, "SELECT l.attempt, l.seq, l.message, l.omitted FROM task_log l JOIN task t ON t.id = l.task_id "
                    "WHERE t.uuid = ? ORDER BY l.attempt, l.seq", (uuid,))


def test_lines_are_stored_by_attempt_once_each_masked_and_outside_the_event_log(db):
    now = time.time()
    lines = [log_record("t1", 1, "connecting with password=hunter2", now),
             log_record("t1", 2, "done", now + 0.1),
             log_record("t1", 1, "second attempt", now + 1, retries=1),
             {**log_record("t1", 2, "", now + 1.1, retries=1, omitted=1234, omitted_bytes=56789), "message": None}]
    started = [event("task-received", "t1", now - 1), event("task-started", "t1", now - 0.5)]
    # The same records twice, as the stream delivers them again to a collector killed before acknowledging.
    run_writer(db, now, [(started, now), (lines, now), ([dict(r) for r in lines], now)])
    assert logs(db, "t1") == [(1, 1, "connecting with password=***", None), (1, 2, "done", None),
                              (2, 1, "second attempt", None), (2, 2, None, 1234)]
    types = [t for (t,) in rows(db, "SELECT e.type FROM task_event e JOIN task t ON t.id = e.task_id "
                                    "WHERE t.uuid = ?", ("t1",))]
    assert types == ["task-received", "task-started"]
    assert rows(db, "SELECT state FROM task WHERE uuid = ?", ("t1",)) == [("STARTED",)]


def test_a_line_of_a_task_not_known_yet_makes_its_row(db):
    now = time.time()
    run_writer(db, now, [([log_record("early", 1, "before any event", now)], now)])
    assert logs(db, "early") == [(1, 1, "before any event", None)]
    run_writer(db, now, [([event("task-received", "early", now), event("task-started", "early", now + 0.1)], now)])
    assert rows(db, "SELECT state FROM task WHERE uuid = ?", ("early",)) == [("STARTED",)]


def test_retention_deletes_the_lines_with_the_events_and_with_the_task(db):
    now = time.time()
    messages = []
    for uuid, days in (("gone", 200), ("summary-only", 10), ("fresh", 1)):
        at = now - days * DAY
        lifecycle = [event(t, uuid, at + n * 0.001) for n, t in
                     enumerate(("task-received", "task-started", "task-succeeded"))]
        messages += [(lifecycle[:2], at), ([log_record(uuid, 1, f"{uuid} line", at)], at), (lifecycle[2:], at)]
    run_writer(db, now, messages)
    assert all(logs(db, uuid) for uuid in ("gone", "summary-only", "fresh"))

    retention.prune(db, Retention(), now, pause=0)

    assert rows(db, "SELECT COUNT(*) FROM task_log l LEFT JOIN task t ON t.id = l.task_id WHERE t.id IS NULL") == [(0,)]
    assert logs(db, "summary-only") == []  # its events went after 7 days: its lines with them
    assert logs(db, "fresh") == [(1, 1, "fresh line", None)]
