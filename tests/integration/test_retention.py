"""Retention: what pruning deletes and what it keeps, in small batches, on SQLite and PostgreSQL.

The store is filled through the collector's own writer with tasks of every state at four ages (200, 60, 10 and 1
days since their last event) and the default settings (finished tasks 30 days, failures 90, events 7, rollups
400), then pruned as the collector and `webui prune` do.
"""
from __future__ import annotations

import re
import threading
import time
from collections import Counter
from typing import Any

import pytest
from celery import Celery

from tests.support.collector import running_collector
from tests.support.store import close_database
from tests.support.waiting import wait_for
from webui.app import create_app
from webui.cli import main
from webui.collector.rollups import COUNT_COLUMNS, event_minute
from webui.collector.writer import CollectorStats, Writer
from webui.privacy import Redactor
from webui.settings import default_settings
from webui.store import metrics_checkpoint, overview_queries, retention
from webui.store.metrics_queries import TaskTotalsReader
from webui.store.models import (
    AlertIncident,
    AlertIncidentEvent,
    AlertNotification,
    AuditLog,
    AuthFailure,
    TaskMinute,
)
from webui.store.retention import Retention

DAY = 86_400.0
AGES = {"old": 200, "mid": 60, "recent": 10, "fresh": 1}  # days since the task's last event
LIFECYCLES = {
    "SUCCESS": ("task-received", "task-started", "task-succeeded"),
    "FAILURE": ("task-received", "task-started", "task-failed"),
    "REVOKED": ("task-received", "task-revoked"),
    "REJECTED": ("task-received", "task-started", "task-rejected"),
    "CANCELLED": ("task-received", "task-started", "task-cancelled"),
    "LOST": ("task-received", "task-started"),  # then declared lost, as the lost-task marker does
    "PENDING": ("task-sent",),
    "RECEIVED": ("task-received",),
    "STARTED": ("task-received", "task-started"),
    "RETRY": ("task-received", "task-started", "task-retried"),
}
UNFINISHED = ("PENDING", "RECEIVED", "STARTED", "RETRY")
PER_KIND = 3  # tasks of each state at each age


@pytest.fixture
def now() -> float:
    return time.time()


def uuid_of(age: str, state: str, i: int) -> str:
    return f"{age}-{state.lower()}-{i}"


def event(etype: str, uuid: str, ts: float) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": etype, "uuid": uuid, "timestamp": ts, "hostname": "w1@test"}
    if etype in ("task-sent", "task-received"):
        fields.update(name=f"proj.{uuid.split('-')[1] if '-' in uuid else 'task'}", args="(1,)", kwargs="{}",
                      retries=0)
    if etype == "task-succeeded":
        fields.update(result="2", runtime=0.25)
    if etype in ("task-failed", "task-retried"):
        fields.update(exception="ValueError('no')", traceback="Traceback …")
    return fields


def run_writer(db: Any, now: float, messages: list[tuple[list[dict[str, Any]], float]]) -> None:
    """Feed `(events, received)` messages through the collector's writer, its clock at `now`, until written."""
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.02, clock=lambda: now)
    writer.start()
    assert writer.leading.wait(10)
    for events, received in messages:
        writer.put_events(events, received)
    wait_for(lambda: writer.pending() == 0, message="the writer never wrote the events")
    writer.stop()
    assert writer.failed is None


def fill(db: Any, now: float) -> None:
    """Every state at every age, oldest first; each event its own message, a millisecond apart."""
    messages = []
    for age, days in AGES.items():
        for state, lifecycle in LIFECYCLES.items():
            for i in range(PER_KIND):
                uuid = uuid_of(age, state, i)
                last = now - days * DAY - i
                for n, etype in enumerate(lifecycle):
                    at = last - (len(lifecycle) - 1 - n) * 0.001
                    messages.append(([event(etype, uuid, at)], at))
    run_writer(db, now, messages)
    p = db.param
    db.execute_sql(f"UPDATE task SET state = {p} WHERE uuid LIKE {p}", ("LOST", "%-lost-%"))


def rows(db: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return list(db.execute_sql(sql.replace("?", db.param), params).fetchall())


def orphan_events(db: Any) -> int:
    return rows(db, "SELECT COUNT(*) FROM task_event e LEFT JOIN task t ON t.id = e.task_id WHERE t.id IS NULL")[0][0]


def tasks(db: Any) -> set[str]:
    return {uuid for (uuid,) in rows(db, "SELECT uuid FROM task")}


def events_by_task(db: Any) -> Counter[str]:
    return Counter(uuid for (uuid,) in rows(db, "SELECT t.uuid FROM task_event e JOIN task t ON t.id = e.task_id"))


def rollups(db: Any) -> dict[tuple[int, str], tuple[int, ...]]:
    return {(minute, name): tuple(values) for minute, name, *values in
            rows(db, f"SELECT minute, name, {', '.join(COUNT_COLUMNS)} FROM task_minute")}


def rollups_from_raw_rows(db: Any) -> dict[tuple[int, str], tuple[int, ...]]:
    """What the stream's events in `task_event` add up to, per minute and task name, counted here."""
    counts: dict[tuple[int, str], list[int]] = {}
    for etype, ts, received, name in rows(db, "SELECT e.type, e.timestamp, e.received, t.name FROM task_event e "
                                              "JOIN task t ON t.id = e.task_id WHERE e.source IS NULL"):
        column = etype.removeprefix("task-")
        if column in COUNT_COLUMNS:
            key = (event_minute({"timestamp": ts, "local_received": received}), name or "")
            counts.setdefault(key, [0] * len(COUNT_COLUMNS))[COUNT_COLUMNS.index(column)] += 1
    return {key: tuple(values) for key, values in counts.items()}


def expected_tasks() -> set[str]:
    kept = set()
    for age, days in AGES.items():
        for state in LIFECYCLES:
            keep_days = None if state in UNFINISHED else 90 if state in ("FAILURE", "LOST") else 30
            if keep_days is None or days < keep_days:
                kept.update(uuid_of(age, state, i) for i in range(PER_KIND))
    return kept


def expected_events(kept: set[str]) -> dict[str, int]:
    """Unfinished tasks keep all their events; finished ones theirs only while younger than 7 days."""
    counts = {}
    for uuid in kept:
        age, state = uuid.split("-")[:2]
        if state.upper() in UNFINISHED or AGES[age] < 7:
            counts[uuid] = len(LIFECYCLES[state.upper()])
    return counts


# -- what goes and what stays ---------------------------------------------------------------------------------


def test_finished_tasks_go_after_their_retention_failures_later_and_unfinished_ones_never(db, now):
    fill(db, now)

    outcome = retention.prune(db, Retention(), now, pause=0)

    kept = tasks(db)
    assert kept == expected_tasks()
    assert {u for u in kept if u.startswith("old-")} == {uuid_of("old", s, i) for s in UNFINISHED
                                                       for i in range(PER_KIND)}
    assert {u.split("-")[1] for u in kept if u.startswith("mid-")} == {"failure", "lost", *map(str.lower, UNFINISHED)}
    by_table = outcome.by_table()
    assert by_table["task"] == 4 * PER_KIND * 2 + 2 * PER_KIND * 1  # 4 finished states at 200 and 60 days; 2 at 200
    assert not outcome.stopped


def test_events_go_before_their_task_and_gone_tasks_leave_no_events_behind(db, now):
    fill(db, now)

    retention.prune(db, Retention(), now, pause=0)

    assert dict(events_by_task(db)) == expected_events(tasks(db))
    assert orphan_events(db) == 0
    # A 10-day-old success keeps its row and summary, not its event log.
    success = rows(db, "SELECT state, name, runtime, result, event_count FROM task WHERE uuid = ?",
                   (uuid_of("recent", "SUCCESS", 0),))
    assert success == [("SUCCESS", "proj.success", 0.25, "2", 3)]


def test_the_task_page_says_how_many_older_events_were_pruned(database_url, db, now):
    fill(db, now)
    retention.prune(db, Retention(), now, pause=0)
    app = create_app(default_settings(broker="memory://", database=database_url), start_collector=False)
    try:
        client = app.test_client()
        pruned = client.get(f"/task/{uuid_of('recent', 'FAILURE', 0)}").get_data(as_text=True)
        whole = client.get(f"/task/{uuid_of('fresh', 'FAILURE', 0)}").get_data(as_text=True)
    finally:
        close_database(app.config["WEBUI_DATABASE"])
    assert re.search(r'id="events-pruned">3 older events were\s+pruned', pruned)
    assert "ValueError" in pruned  # the row still holds the exception
    assert 'id="events-pruned"' not in whole


def test_rollups_equal_what_the_raw_rows_said_and_pruning_tasks_changes_no_count(db, now):
    fill(db, now)
    before = rollups(db)
    assert before == rollups_from_raw_rows(db)
    overview = overview_queries.activity(now - 0.5 * DAY)  # the last day holds the 1-day-old tasks
    failing = overview_queries.top_failing_names(now - 300 * DAY)
    assert overview.day.succeeded == PER_KIND and overview.day.failed == PER_KIND

    retention.prune(db, Retention(), now, pause=0)

    assert rollups(db) == before
    assert rollups_from_raw_rows(db) != before  # the raw rows say less now; the rollups still say it all
    assert overview_queries.activity(now - 0.5 * DAY) == overview
    assert overview_queries.top_failing_names(now - 300 * DAY) == failing


def test_metrics_totals_stay_as_they_were_when_tasks_and_rollups_are_pruned(db, now):
    fill(db, now)
    TaskMinute.insert(minute=int((now - 500 * DAY) // 60) * 60, name="proj.success", received=5, succeeded=4,
                      runtime_sum=1.5, runtime_count=4, rt_b05=4).execute()
    bounds = tuple(float(b) for b in default_settings().metrics_wait_buckets)
    running = TaskTotalsReader(bounds)  # a web process that summed the old rows before they were pruned
    before = running.read(now)
    assert before == TaskTotalsReader(bounds).read(now)
    assert before.failures == {("proj.failure", "ValueError"): len(AGES) * PER_KIND}
    assert before.counts["proj.success"]["received"] == 5 + len(AGES) * PER_KIND

    metrics_checkpoint.advance(db, bounds, now)  # as the leader does every minute
    checkpointed = rows(db, "SELECT * FROM task_total ORDER BY name, metric, label")
    outcome = retention.prune(db, Retention(), now, pause=0)

    assert outcome.by_table()["task"] > 0 and outcome.by_table()["task_minute"] == 1
    assert running.read(now) == before
    assert TaskTotalsReader(bounds).read(now) == before  # a process started after pruning
    assert TaskTotalsReader((1.0, 1000.0)).read(now).wait == {  # other buckets: counted under the next bound up
        name: ([sum(counts[:bounds.index(1.0) + 1]), sum(counts[bounds.index(1.0) + 1:-1]), counts[-1]], total)
        for name, (counts, total) in before.wait.items()}
    # What was pruned was counted in the checkpoint already: pruning added nothing, anywhere.
    assert rows(db, "SELECT * FROM task_total ORDER BY name, metric, label") == checkpointed
    assert rows(db, "SELECT name, received FROM task_minute WHERE minute = 0") == []


def test_rollups_worker_transitions_and_gaps_go_after_the_rollup_retention(db, now):
    old, recent = now - 500 * DAY, now - 10 * DAY
    p = db.param
    for at in (old, recent):
        TaskMinute.insert(minute=int(at // 60) * 60, name="proj.add", received=1).execute()
    for at in (old, recent):
        db.execute_sql(f"INSERT INTO worker_event (worker_id, online, at, reason) VALUES (1, {p}, {p}, 'online')",
                       (True, at))
    db.execute_sql(f"INSERT INTO collector_gap (started_at, ended_at, kind, reason) VALUES "
                   f"({p}, {p}, 'broker-disconnected', 'closed long ago'), ({p}, NULL, 'collector-down', 'open'), "
                   f"({p}, {p}, 'broker-disconnected', 'recent')", (old, old + 60, old, recent, recent + 60))

    retention.prune(db, Retention(), now, pause=0)

    assert rows(db, "SELECT minute FROM task_minute WHERE minute > 0") == [(int(recent // 60) * 60,)]
    assert rows(db, "SELECT name, received FROM task_minute WHERE minute = 0") == []  # counted in the checkpoint
    assert rows(db, "SELECT at FROM worker_event") == [(recent,)]
    assert sorted(r[0] for r in rows(db, "SELECT reason FROM collector_gap")) == ["open", "recent"]


def test_resolved_incidents_go_with_their_timeline_audit_entries_after_400_days_login_failures_after_one(db, now):
    def incident(opened: float, resolved: float | None) -> int:
        row = AlertIncident.create(rule_id=1, subject="queue:celery", state="resolved" if resolved else "open",
                                   severity="warning", summary="backlog", opened_at=opened, last_seen_at=opened,
                                   resolved_at=resolved)
        AlertIncidentEvent.create(incident_id=row.id, at=opened, kind="opened")
        AlertNotification.create(incident_id=row.id, channel_id=1, kind="opened", payload="{}", created_at=opened,
                                 next_attempt_at=opened, sent_at=opened + 1)
        return int(row.id)

    gone = incident(now - 120 * DAY, now - 100 * DAY)
    open_long = incident(now - 200 * DAY, None)
    resolved_lately = incident(now - 120 * DAY, now - 10 * DAY)
    AlertNotification.create(channel_id=1, kind="test", payload="{}", created_at=now - 100 * DAY,
                             next_attempt_at=now - 100 * DAY, sent_at=now - 100 * DAY)
    AlertNotification.create(channel_id=1, kind="test", payload="{}", created_at=now - 100 * DAY,
                             next_attempt_at=now)  # never sent yet: kept
    for days in (500, 10):
        AuditLog.create(at=now - days * DAY, actor="alice", provider="basic", action="revoke", result="ok")
    AuthFailure.create(key="addr:10.0.0.1", at=now - 2 * DAY)
    AuthFailure.create(key="addr:10.0.0.1", at=now - 60)

    retention.prune(db, Retention(), now, pause=0)

    assert {i.id for i in AlertIncident.select()} == {open_long, resolved_lately}
    assert {e.incident_id for e in AlertIncidentEvent.select()} == {open_long, resolved_lately}
    assert gone not in {n.incident_id for n in AlertNotification.select()}
    assert [n.sent_at for n in AlertNotification.select().where(AlertNotification.incident_id.is_null())] == [None]
    assert [round((now - a.at) / DAY) for a in AuditLog.select()] == [10]
    assert [round(now - f.at) for f in AuthFailure.select()] == [60]


def test_zero_days_keeps_everything_of_that_kind(db, now):
    fill(db, now)
    count_before = len(tasks(db))
    events_before = events_by_task(db)

    retention.prune(db, Retention(tasks=0, failed=0, events=0), now, pause=0)

    assert len(tasks(db)) == count_before
    assert events_by_task(db) == events_before


def test_the_newest_task_is_kept_so_task_ids_are_never_reused(db, now):
    run_writer(db, now, [([event(e, f"t{i}", now - 40 * DAY + i)], now - 40 * DAY + i)
                         for i in range(3) for e in LIFECYCLES["SUCCESS"]])

    retention.prune(db, Retention(), now, pause=0)

    assert tasks(db) == {"t2"}
    assert rows(db, "SELECT MAX(id) FROM task") == [(3,)]


# -- how it deletes -------------------------------------------------------------------------------------------


def test_each_batch_deletes_at_most_the_batch_size_and_ends_the_same(db, now):
    fill(db, now)
    batches: list[retention.Batch] = []

    retention.prune(db, Retention(batch=4), now, pause=0, on_batch=batches.append)

    assert tasks(db) == expected_tasks()
    assert dict(events_by_task(db)) == expected_events(tasks(db))
    event_batches = [b for b in batches if b.step.startswith("events")]
    task_batches = [b for b in batches if "tasks last heard of" in b.step]
    assert len(event_batches) > 10 and all(b.deleted["task_event"] <= 4 for b in event_batches)
    assert len(task_batches) >= 6 and all(b.deleted["task"] <= 4 for b in task_batches)
    assert all(b.held < 5 for b in batches)


def test_a_dry_run_counts_exactly_what_pruning_then_deletes(db, now):
    fill(db, now)
    AuditLog.create(at=now - 500 * DAY, actor="alice", provider="basic", action="revoke", result="ok")
    before = (tasks(db), events_by_task(db))

    counted = retention.count(db, Retention(), now)
    assert (tasks(db), events_by_task(db)) == before
    deleted = retention.prune(db, Retention(batch=5), now, pause=0)

    counts = {table: n for table, n in counted.by_table().items() if n}
    assert counts == {table: n for table, n in deleted.by_table().items() if n}
    assert counts["task"] > 0 and counts["task_event"] > 0 and counts["audit_log"] == 1


def test_a_stop_ends_pruning_between_two_batches(db, now):
    fill(db, now)
    stop = threading.Event()

    outcome = retention.prune(db, Retention(batch=2), now, pause=0, stop=stop,
                              on_batch=lambda batch: stop.set())

    assert outcome.stopped and outcome.total <= 2


def test_the_background_loop_prunes_every_interval_and_stops_promptly(db, now, database_url):
    fill(db, now)
    settings = default_settings(database=database_url, prune_interval=1)
    stop = threading.Event()
    loop = threading.Thread(target=retention.prune_loop, args=(db, settings), daemon=True,
                            kwargs={"stop": stop, "alive": lambda: True})
    loop.start()
    wait_for(lambda: tasks(db) == expected_tasks(), timeout=30, message="the loop never pruned")

    stopped_at = time.monotonic()
    stop.set()
    loop.join(5)
    assert not loop.is_alive() and time.monotonic() - stopped_at < 2


def test_the_leading_collector_prunes_in_the_background(db, now, database_url, redis_db):
    fill(db, now)

    with running_collector(Celery(broker=redis_db), database_url, prune_interval=1, reconcile=False):
        wait_for(lambda: tasks(db) == expected_tasks(), timeout=30, message="the collector never pruned")


# -- the writer after pruning ---------------------------------------------------------------------------------


def test_a_late_event_for_a_pruned_task_makes_a_new_row_and_no_orphan_event(db, now):
    """The writer had the task in memory; pruning deleted its row; then one more event came for it."""
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.02, clock=lambda: now)
    writer.start()
    assert writer.leading.wait(10)
    try:
        old = now - 40 * DAY
        for n, etype in enumerate(LIFECYCLES["SUCCESS"]):
            writer.put_events([event(etype, "late", old + n)], old + n)
        writer.put_events([event("task-received", "newest", now)], now)
        wait_for(lambda: writer.pending() == 0 and tasks(db) == {"late", "newest"}, message="not written")

        retention.prune(db, Retention(), now, pause=0)
        assert tasks(db) == {"newest"}

        writer.put_events([event("task-revoked", "late", now)], now)
        wait_for(lambda: "late" in tasks(db), message="the late event made no row")
    finally:
        writer.stop()
    assert rows(db, "SELECT state, name, event_count, id > 2 FROM task WHERE uuid = 'late'") == [
        ("REVOKED", None, 1, True)]
    assert orphan_events(db) == 0


# -- webui prune ----------------------------------------------------------------------------------------------


def test_webui_prune_dry_run_prints_what_would_go_and_deletes_nothing(database_url, db, now, capsys):
    fill(db, now)
    before = (tasks(db), events_by_task(db))

    assert main(["prune", "--dry-run", "--database", database_url]) == 0

    out = capsys.readouterr().out
    assert (tasks(db), events_by_task(db)) == before
    assert re.search(r"^SUCCESS tasks last heard of before .*: would delete 6 task rows$", out, re.M)
    assert re.search(r"^events of finished tasks received before .*: would delete \d+ task_event rows$", out, re.M)
    total = re.search(r"^would delete ([\d,]+) rows in all \(dry run: nothing was deleted\)$", out, re.M)
    assert total and int(total.group(1).replace(",", "")) > 0

    assert main(["prune", "--database", database_url]) == 0

    out = capsys.readouterr().out
    assert re.search(rf"^deleted {total.group(1)} rows in all$", out, re.M)
    assert re.search(r"^SUCCESS tasks last heard of before .*: deleted 6 task rows$", out, re.M)
    assert tasks(db) == expected_tasks()


def test_webui_prune_reads_the_retention_settings(database_url, db, now, capsys):
    fill(db, now)

    assert main(["prune", "--database", database_url, "--retention-days", "0", "--failed-retention-days", "0",
                 "--event-retention-days", "0"]) == 0

    assert "deleted 0 rows in all" in capsys.readouterr().out
    assert len(tasks(db)) == len(AGES) * len(LIFECYCLES) * PER_KIND

