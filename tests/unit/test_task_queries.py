"""The task page's queries: a task's events grouped by attempt, the gaps around it, its workflow."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.waiting import wait_for
from webui.collector.writer import CollectorStats, Writer
from webui.privacy import Redactor
from webui.store import task_queries
from webui.store.database import bind_models, open_database
from webui.store.schema import upgrade


@pytest.fixture
def db(tmp_path) -> Iterator[Any]:
    database = open_database(f"sqlite:///{tmp_path}/q.sqlite3")
    upgrade(database)
    bind_models(database)
    with database.connection_context():
        yield database
    database.close()


def write(db: Any, *events: dict[str, Any]) -> None:
    """Store `events` through the collector's own writer (merge rules and all)."""
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.01)
    for i, event in enumerate(events):
        writer.put_events([event], 1000.0 + i)
    writer.start()
    writer.leading.wait(5)
    wait_for(lambda: writer.pending() == 0, message="the writer never drained its buffer")
    writer.stop()


def ev(type_: str, ts: float, uuid: str = "t1", host: str = "w1@h", **fields: Any) -> dict[str, Any]:
    return {"type": type_, "uuid": uuid, "hostname": host, "timestamp": ts, "pid": 10, **fields}


def labels(attempt: task_queries.Attempt) -> list[str]:
    return [e.label for e in attempt.events]


def test_it_groups_a_task_retried_twice_into_three_attempts(db):
    write(db,
          ev("task-sent", 1.0, host="client@h", name="r", args="()", kwargs="{}", retries=0),
          ev("task-received", 2.0, retries=0), ev("task-started", 3.0),
          ev("task-retried", 4.0, exception="Retry('a')", traceback="Traceback: first"),
          ev("task-received", 5.0, retries=1), ev("task-started", 6.0),
          # The retry's re-send overtakes the worker's task-retried: it still belongs to attempt 3.
          ev("task-sent", 6.5, host="w1@h", retries=2), ev("task-received", 6.6, host="w2@h", retries=2),
          ev("task-retried", 7.0, exception="Retry('b')", traceback="Traceback: second"),
          ev("task-started", 8.0, host="w2@h"), ev("task-succeeded", 9.0, host="w2@h", result="'ok'", runtime=1.0))
    task = task_queries.task_by_uuid("t1")
    events = task_queries.task_timeline(task)
    attempts = task_queries.group_attempts(events)
    assert [a.number for a in attempts] == [1, 2, 3]
    assert labels(attempts[0]) == ["sent", "received", "started", "retried"]
    assert labels(attempts[1]) == ["received", "started", "retried"]
    assert labels(attempts[2]) == ["sent", "received", "started", "succeeded"]
    assert attempts[2].workers == ["w2@h"]  # who ran it; the re-send came from w1@h
    # Each retry keeps its own exception and traceback, whatever the task row says now.
    assert attempts[0].events[-1].outcome == {"exception": "Retry('a')", "traceback": "Traceback: first"}
    assert attempts[1].events[-1].outcome["traceback"] == "Traceback: second"
    assert events[0].delay == 1000.0 - 1.0


def test_it_labels_repairs_and_custom_events(db):
    write(db, ev("task-received", 2.0, name="x", retries=0), ev("task-progress", 2.5, done=3))
    task = task_queries.task_by_uuid("t1")
    db.execute_sql("UPDATE task_event SET source = 'inspect' WHERE seq = 0")
    events = task_queries.task_timeline(task)
    assert [(e.label, e.source_label) for e in events] == [("received", "repaired from inspect"), ("custom", None)]
    assert events[1].extra == {"done": 3}


def test_a_task_never_seen_is_none(db):
    assert task_queries.task_by_uuid("nope") is None


def test_it_finds_the_gaps_that_overlap_the_tasks_life(db):
    rows = [(10.0, 20.0, "before"), (40.0, 60.0, "overlaps the start"), (70.0, 80.0, "inside"),
            (95.0, None, "still open"), (200.0, 210.0, "after")]
    for start, end, reason in rows:
        db.execute_sql("INSERT INTO collector_gap (started_at, ended_at, kind, reason) VALUES (?, ?, ?, ?)",
                       (start, end, "collector-down", reason))
    assert [g.reason for g in task_queries.gaps_during(50.0, 100.0)] == [
        "overlaps the start", "inside", "still open"]
    assert [g.reason for g in task_queries.gaps_during(50.0, None)] == [
        "overlaps the start", "inside", "still open", "after"]
    assert task_queries.gaps_during(None, None) == []


def test_gaps_are_placed_in_the_timeline_where_they_happened(db):
    write(db, ev("task-received", 2.0, name="x", retries=0), ev("task-started", 3.0))
    db.execute_sql("INSERT INTO collector_gap (started_at, ended_at, kind, reason) VALUES (1000.5, 1000.9, "
                   "'collector-down', 'restart')")
    attempts = task_queries.group_attempts(task_queries.task_timeline(task_queries.task_by_uuid("t1")))
    [rows] = task_queries.place_gaps(attempts, task_queries.gaps_during(1000.0, 1001.0))
    assert ["gap" if r.gap else r.event.label for r in rows] == ["received", "gap", "started"]


def test_workflow_of_a_chain_links_root_parent_and_children(db):
    write(db,
          ev("task-received", 1.0, uuid="a", name="add", retries=0, root_id="a"),
          ev("task-received", 2.0, uuid="b", name="add", retries=0, root_id="a", parent_id="a"),
          ev("task-received", 3.0, uuid="c", name="add", retries=0, root_id="a", parent_id="b"))
    a, b, c = (task_queries.task_by_uuid(u) for u in "abc")
    assert a.root_id is None  # its own root: NULL in the row
    first = task_queries.workflow(a)
    assert first.root is not None and first.root.uuid == "a" and first.parent is None
    assert [t.uuid for t in first.children] == ["b"]
    middle = task_queries.workflow(b)
    assert (middle.root.uuid, middle.parent.uuid, [t.uuid for t in middle.children]) == ("a", "a", ["c"])
    last = task_queries.workflow(c)
    assert (last.root_uuid, last.parent_uuid, last.children) == ("a", "b", [])


def test_a_root_never_seen_is_named_but_not_found(db):
    write(db, ev("task-received", 1.0, uuid="b", name="add", retries=0, root_id="gone", parent_id="gone"))
    flow = task_queries.workflow(task_queries.task_by_uuid("b"))
    assert (flow.root, flow.root_uuid, flow.parent, flow.parent_uuid) == (None, "gone", None, "gone")


def test_children_are_bounded(db, monkeypatch):
    monkeypatch.setattr(task_queries, "MAX_CHILDREN", 2)
    write(db, *[ev("task-received", 1.0, uuid=f"c{i}", name="x", retries=0, parent_id="p") for i in range(3)],
          ev("task-received", 1.0, uuid="p", name="x", retries=0))
    flow = task_queries.workflow(task_queries.task_by_uuid("p"))
    assert len(flow.children) == 2 and flow.more_children


def test_a_retry_is_not_its_own_parent_or_child(db):
    # Celery re-sends a retry from inside the task: the new message names the task as its own parent.
    write(db, ev("task-sent", 1.0, uuid="r", name="x", retries=0),
          ev("task-sent", 2.0, uuid="r", name="x", retries=1, parent_id="r"))
    flow = task_queries.workflow(task_queries.task_by_uuid("r"))
    assert (flow.parent, flow.parent_uuid, flow.children) == (None, None, [])
