"""Retention: delete what the settings no longer keep, in small batches, each in a short transaction of its own.

What goes (every age by the collector's clock, from when the monitor last heard of the row):
- the event log of finished tasks, `event_retention_days` after each event arrived. The task row keeps its
  summary, and its `event_count` still counts every event, so the task page says how many were pruned;
- finished tasks, with whatever events they still have, counted from their last event (`updated_at`): SUCCESS,
  REVOKED, REJECTED and CANCELLED after `retention_days`, FAILURE and LOST after `failed_retention_days`; their
  entries in the search index go in the same transaction (webui.store.task_search.forget);
- per-minute rollups, worker transitions and closed collector gaps after `rollup_retention_days`;
- resolved alert incidents (with their timeline and notifications) and delivered or abandoned test
  notifications after `failed_retention_days`; audit log entries after `audit_retention_days`; login failures
  after a day. A setting of 0 keeps its rows forever.

Never pruned: unfinished tasks (PENDING, RECEIVED, STARTED, RETRY) and their events whatever their age; the task
with the highest id (the writer numbers new tasks from it, so ids are never reused and every cursor by id stays
right); workers, beat entries (webui.beat.beat_rows prunes beat fires), alert rules and channels, API tokens.

Each batch reads the oldest entries of one index (or the lowest ids, which grow with time), deletes at most
`batch` rows in one transaction and commits, so the write lock (SQLite) or the row locks (PostgreSQL) are held
for milliseconds; `prune` then pauses at least as long as the batch took, so the collector's writer and the
pages never wait long. No batch reads the rows that are kept, except old events of unfinished tasks, once a pass.

A late event for a pruned task: the writer rereads the state of a task it has not heard of for an hour
(webui.collector.rows.TaskCache), finds no row and makes a new one holding what that event says (a SUCCESS
without a name, say), which is pruned in its turn. On PostgreSQL an event merged at the very moment a batch
deletes its task can land in the log without a task row; the next pass deletes it with the old events.
Rollups are added when events arrive, never computed from task rows: pruning tasks changes no count. /metrics'
counters are sums over stored rows: `prune` first advances their checkpoint (webui.store.metrics_checkpoint),
which adds every settled row's share to `task_total`, and then deletes task rows and rollup minutes only below
its boundaries, adding them nowhere. The counters never fall, and Prometheus never sees a reset.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from peewee import Database

from webui.collector.leader import sleep_while_leading
from webui.settings import BY_NAME
from webui.store import metrics_checkpoint, task_search
from webui.store.database import discard_connection, is_sqlite
from webui.store.metrics_queries import Covered, checkpoint

log = logging.getLogger(__name__)

DAY = 86_400.0
FINISHED = ("SUCCESS", "REVOKED", "REJECTED", "CANCELLED")  # kept `retention_days`
FAILED = ("FAILURE", "LOST")  # kept `failed_retention_days`
PRUNABLE = FINISHED + FAILED  # any other state (PENDING, RECEIVED, STARTED, RETRY) is never pruned
AUTH_FAILURE_DAYS = 1  # login throttling looks back 15 minutes; a day of failures is kept for the curious
PAUSE = 0.05  # seconds at least between two batches, and at least as long as the batch held the lock
FIRST_PASS_DELAY = 60.0  # after the collector starts leading: let it catch up with the stream first
_WAIT_BOUNDS = tuple(float(b) for b in BY_NAME["metrics_wait_buckets"].default)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Retention:
    """Days each kind of row is kept (0: forever) and the rows per batch."""

    tasks: int = 30
    failed: int = 90
    events: int = 7
    rollups: int = 400
    audit: int = 400
    batch: int = 2000
    wait_bounds: tuple[float, ...] = _WAIT_BOUNDS  # /metrics' queue-wait buckets, for the checkpoint

    @classmethod
    def from_settings(cls, settings: Any) -> Retention:
        return cls(tasks=settings.retention_days, failed=settings.failed_retention_days,
                   events=settings.event_retention_days, rollups=settings.rollup_retention_days,
                   audit=settings.audit_retention_days, batch=settings.prune_batch,
                   wait_bounds=tuple(float(b) for b in settings.metrics_wait_buckets))


@dataclass(frozen=True)
class Batch:
    """One transaction's work: rows deleted per table, and how long the write transaction lasted."""

    step: str
    deleted: dict[str, int]
    held: float


class Step(Protocol):
    label: str

    def batches(self, db: Database, limit: int) -> Iterator[Batch]:
        """Delete the step's rows, at most `limit` per transaction, yielding after each commit."""

    def count(self, db: Database) -> dict[str, int]:
        """What `batches` would delete now (for `webui prune --dry-run`), by table."""


@dataclass
class Outcome:
    """Rows deleted (or, for a dry run, that would be) per step, in the order the steps ran."""

    steps: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    stopped: bool = False

    def add(self, label: str, deleted: dict[str, int]) -> None:
        if not self.steps or self.steps[-1][0] != label:
            self.steps.append((label, dict.fromkeys(deleted, 0)))
        counts = self.steps[-1][1]
        for table, n in deleted.items():
            counts[table] = counts.get(table, 0) + n

    def by_table(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for _, counts in self.steps:
            for table, n in counts.items():
                totals[table] = totals.get(table, 0) + n
        return totals

    @property
    def total(self) -> int:
        return sum(self.by_table().values())


def plan(retention: Retention, now: float, covered: Covered) -> list[Step]:
    """The steps due at `now`, in the order they run: old events first, then tasks, then the rest. Tasks and
    rollup minutes go only where /metrics' checkpoint has counted them (`covered`)."""
    def before(days: int) -> float:
        return now - days * DAY

    steps: list[Step] = []
    events_before = before(retention.events) if retention.events else None
    if events_before is not None:
        steps.append(OldEvents(events_before))
    for days, states in ((retention.tasks, FINISHED), (retention.failed, FAILED)):
        if days:
            steps += [OldTasks(state, before(days), covered, events_before) for state in states]
    if retention.rollups:
        cutoff = before(retention.rollups)
        steps.append(OldRollups(min(cutoff, covered.minutes)))
        steps.append(ByIdWindow("worker transitions", "worker_event", "at", "{at} < {p}", cutoff))
        steps.append(ByIdWindow("closed collector gaps", "collector_gap", "started_at",
                                "ended_at IS NOT NULL AND ended_at < {p}", cutoff))
    if retention.failed:
        cutoff = before(retention.failed)
        steps.append(ByIdWindow(
            "resolved alert incidents (with their timeline and notifications)", "alert_incident", "opened_at",
            "state = 'resolved' AND resolved_at < {p}", cutoff,
            cascade=(("alert_incident_event", "incident_id"), ("alert_notification", "incident_id"))))
        steps.append(ByIdWindow("test notifications delivered or given up", "alert_notification", "created_at",
                                "incident_id IS NULL AND COALESCE(sent_at, failed_at) < {p}", cutoff))
    if retention.audit:
        steps.append(ByIndexedTime("audit log entries", "audit_log", "at", before(retention.audit)))
    steps.append(ByIndexedTime("login failures", "auth_failure", "at", before(AUTH_FAILURE_DAYS)))
    return steps


def prune(db: Database, retention: Retention, now: float, *, pause: float = PAUSE,
          stop: threading.Event | None = None, alive: Callable[[], bool] = lambda: True,
          on_batch: Callable[[Batch], None] | None = None) -> Outcome:
    """Run every step due at `now` to completion, batch by batch, unless `stop` is set or `alive()` turns false.

    The models must be bound to `db`: the checkpoint of /metrics is advanced first, through them."""
    stop = stop or threading.Event()
    outcome = Outcome()
    covered = metrics_checkpoint.advance(db, retention.wait_bounds, now)
    for step in plan(retention, now, covered):
        outcome.add(step.label, {})
        for batch in step.batches(db, retention.batch):
            outcome.add(batch.step, batch.deleted)
            if on_batch is not None:
                on_batch(batch)
            # The writer waits while a batch holds the lock: give it at least as long before the next one.
            if (stop.wait(max(pause, batch.held)) if batch.held else stop.is_set()) or not alive():
                outcome.stopped = True
                return outcome
    return outcome


def count(db: Database, retention: Retention, now: float) -> Outcome:
    """What `prune` would delete at `now`, step by step, deleting nothing (one counting query per table)."""
    outcome = Outcome()
    for step in plan(retention, now, metrics_checkpoint.target(now, checkpoint())):
        outcome.add(step.label, step.count(db))
    return outcome


def prune_loop(db: Database, settings: Any, *, stop: threading.Event, alive: Callable[[], bool],
               clock: Callable[[], float] = time.time) -> None:
    """In the leading collector: a `prune` pass every `prune_interval` seconds until stopped."""
    retention = Retention.from_settings(settings)
    interval = settings.prune_interval
    if not sleep_while_leading(stop, alive, min(FIRST_PASS_DELAY, interval)):
        return
    while True:
        started = time.monotonic()
        try:
            with db.connection_context():
                outcome = prune(db, retention, clock(), stop=stop, alive=alive)
            if outcome.total:
                log.info("pruned %s in %.1fs", describe(outcome.by_table()), time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - the next pass tries again; nothing half-done is left behind
            log.warning("pruning failed: %s", exc)
            discard_connection(db)
        if not sleep_while_leading(stop, alive, interval):
            return


def describe(counts: dict[str, int]) -> str:
    """`{"task": 3, "task_event": 1}` as "3 task rows, 1 task_event row"."""
    return ", ".join(f"{n:,} {table} row{'' if n == 1 else 's'}" for table, n in counts.items() if n) or "nothing"


# -- the steps -----------------------------------------------------------------------------------------------

def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


@dataclass
class OldEvents:
    """The events of finished (or already pruned) tasks received before `cutoff`, by `task_event_received`.

    A window is the oldest `limit` entries of that index; the tasks they belong to are looked up by id, and the
    window's events of finished tasks are deleted. Events of unfinished tasks stay, and the next window starts
    where this one ended, so each is read once a pass.
    """

    cutoff: float
    label: str = ""

    def __post_init__(self) -> None:
        self.label = f"events of finished tasks received before {_when(self.cutoff)}"

    def batches(self, db: Database, limit: int) -> Iterator[Batch]:
        p = db.param
        low: float | None = None
        after_low = False  # True: the last window was one received time of kept events only; step past it
        while True:
            where, params = f"received < {p}", [self.cutoff]
            if low is not None:
                where += f" AND received {'>' if after_low else '>='} {p}"
                params.append(low)
            window = _execute(db, f"SELECT task_id, received FROM task_event WHERE {where} "
                                  f"ORDER BY received LIMIT {int(limit)}", params).fetchall()
            if not window:
                return
            first, last = window[0][1], window[-1][1]
            doomed = _finished_or_gone(db, sorted({task_id for task_id, _ in window}))
            deleted, held = 0, 0.0
            if doomed:
                ids, id_params = _in(db, "task_id", doomed)
                with db.atomic():
                    started = time.perf_counter()
                    deleted = _execute(db, f"DELETE FROM task_event WHERE {ids} AND received >= {p} "
                                           f"AND received <= {p} AND received < {p}",
                                       (*id_params, first, last, self.cutoff)).rowcount
                    # Their logs go with them (webui.collector.task_logs), by the same cutoff.
                    _execute(db, f"DELETE FROM task_log WHERE {ids} AND received < {p}", (*id_params, self.cutoff))
                held = time.perf_counter() - started
            yield Batch(self.label, {"task_event": deleted}, held)
            if len(window) < limit:
                return
            low, after_low = last, not doomed and first == last

    def count(self, db: Database) -> dict[str, int]:
        states = ", ".join([db.param] * len(PRUNABLE))
        row = _execute(db, "SELECT COUNT(*) FROM task_event e LEFT JOIN task t ON t.id = e.task_id "
                           f"WHERE e.received < {db.param} AND (t.id IS NULL OR t.state IN ({states}))",
                       (self.cutoff, *PRUNABLE)).fetchone()
        return {"task_event": int(row[0])}


def _finished_or_gone(db: Database, task_ids: list[int]) -> list[int]:
    ids, params = _in(db, "id", task_ids)
    states = dict(_execute(db, f"SELECT id, state FROM task WHERE {ids}", params).fetchall())
    return [task_id for task_id in task_ids if task_id not in states or states[task_id] in PRUNABLE]


@dataclass
class OldTasks:
    """Tasks in `state` last heard of before `cutoff`, with their events: a range of `task_state_updated`.

    Only the tasks /metrics' checkpoint has counted (`covered`: below its task id, failed before its failure
    time, or not failed), so deleting them changes no total."""

    state: str
    cutoff: float
    covered: Covered
    events_before: float | None = None  # the event step's cutoff: only for counting what it leaves to this one
    label: str = ""

    def __post_init__(self) -> None:
        self.label = f"{self.state} tasks last heard of before {_when(self.cutoff)}"

    def batches(self, db: Database, limit: int) -> Iterator[Batch]:
        p = db.param
        counted = f"(failed_at IS NULL OR failed_at < {p})"
        while True:
            top = _execute(db, "SELECT MAX(id) FROM task").fetchone()[0]
            if top is None:
                return
            below = min(top, self.covered.tasks)
            rows = _execute(db, f"SELECT id FROM task WHERE state = {p} AND updated_at < {p} AND id < {p} "
                                f"AND {counted} ORDER BY updated_at LIMIT {int(limit)}",
                            (self.state, self.cutoff, below, self.covered.failures)).fetchall()
            if not rows:
                return
            ids, id_params = _in(db, "id", [row[0] for row in rows])
            with db.atomic():
                started = time.perf_counter()
                # The condition again: a late event may have moved a task on since it was read.
                deleted = _execute(
                    db, f"DELETE FROM task WHERE {ids} AND state = {p} AND updated_at < {p} AND {counted} "
                        "RETURNING id, exception, args, kwargs, result",
                    (*id_params, self.state, self.cutoff, self.covered.failures)).fetchall()
                # Out of the search index too, in the same transaction (the SQLite index needs the text).
                task_search.forget(db, [(row[0], row[2], row[3], row[4], row[1]) for row in deleted])
                gone = [row[0] for row in deleted]
                events = 0
                if gone:
                    task_ids, task_params = _in(db, "task_id", gone)
                    events = _execute(db, f"DELETE FROM task_event WHERE {task_ids}", task_params).rowcount
                    _execute(db, f"DELETE FROM task_log WHERE {task_ids}", task_params)
            yield Batch(self.label, {"task": len(gone), "task_event": events}, time.perf_counter() - started)
            if len(rows) < limit:
                return

    def count(self, db: Database) -> dict[str, int]:
        p = db.param
        where = (f"t.state = {p} AND t.updated_at < {p} AND t.id < (SELECT MAX(id) FROM task) AND t.id < {p} "
                 f"AND (t.failed_at IS NULL OR t.failed_at < {p})")
        params: tuple[Any, ...] = (self.state, self.cutoff, self.covered.tasks, self.covered.failures)
        tasks = _execute(db, f"SELECT COUNT(*) FROM task t WHERE {where}", params).fetchone()[0]
        if self.events_before is not None:
            where += f" AND e.received >= {p}"
            params += (self.events_before,)
        events = _execute(db, f"SELECT COUNT(*) FROM task_event e JOIN task t ON t.id = e.task_id WHERE {where}",
                          params).fetchone()[0]
        return {"task": int(tasks), "task_event": int(events)}


@dataclass
class OldRollups:
    """`task_minute` rows of minutes before `cutoff`: the oldest minutes of its key, a batch at a time.

    `plan` keeps the cutoff below /metrics' checkpoint, which has counted those minutes (and minute 0, where
    retention folded the minutes it pruned before there was a checkpoint).
    """

    cutoff: float
    label: str = ""

    def __post_init__(self) -> None:
        self.label = f"per-minute rollups before {_when(self.cutoff)}"

    def batches(self, db: Database, limit: int) -> Iterator[Batch]:
        p = db.param
        while True:
            old = f"minute < {p}"
            if not _execute(db, f"SELECT 1 FROM task_minute WHERE {old} LIMIT 1", (self.cutoff,)).fetchone():
                return
            # The minute `limit` rows in: deleting up to it takes `limit` rows, plus that minute's other names.
            row = _execute(db, f"SELECT minute FROM task_minute WHERE {old} ORDER BY minute "
                               f"LIMIT 1 OFFSET {int(limit) - 1}", (self.cutoff,)).fetchone()
            window, params = (old, (self.cutoff,)) if row is None else (f"minute <= {p}", (row[0],))
            with db.atomic():
                started = time.perf_counter()
                deleted = _execute(db, f"DELETE FROM task_minute WHERE {window}", params).rowcount
            yield Batch(self.label, {"task_minute": deleted}, time.perf_counter() - started)
            if row is None:
                return

    def count(self, db: Database) -> dict[str, int]:
        row = _execute(db, f"SELECT COUNT(*) FROM task_minute WHERE minute < {db.param}", (self.cutoff,)).fetchone()
        return {"task_minute": int(row[0])}


@dataclass
class ByIndexedTime:
    """Rows of `table` whose indexed `column` is before `cutoff`, oldest first."""

    what: str
    table: str
    column: str
    cutoff: float
    label: str = ""

    def __post_init__(self) -> None:
        self.label = f"{self.what} before {_when(self.cutoff)}"

    def batches(self, db: Database, limit: int) -> Iterator[Batch]:
        p = db.param
        while True:
            if not _execute(db, f"SELECT 1 FROM {self.table} WHERE {self.column} < {p} LIMIT 1",
                            (self.cutoff,)).fetchone():
                return
            with db.atomic():
                started = time.perf_counter()
                deleted = _execute(db, f"DELETE FROM {self.table} WHERE id IN (SELECT id FROM {self.table} "
                                       f"WHERE {self.column} < {p} ORDER BY {self.column} LIMIT {int(limit)})",
                                   (self.cutoff,)).rowcount
            yield Batch(self.label, {self.table: deleted}, time.perf_counter() - started)
            if deleted < limit:
                return

    def count(self, db: Database) -> dict[str, int]:
        row = _execute(db, f"SELECT COUNT(*) FROM {self.table} WHERE {self.column} < {db.param}",
                       (self.cutoff,)).fetchone()
        return {self.table: int(row[0])}


@dataclass
class ByIdWindow:
    """Rows of a small table matching `doomed` (SQL, `{p}` the cutoff), walked by id in windows of `limit`.

    Ids grow with `born` (when the row was made), and nothing born after the cutoff can be doomed, so the walk
    stops at the first window reaching such a row: old rows that are kept (an open incident) are read once a
    pass, newer rows never. `cascade`: (table, column) pairs holding this table's id, deleted with each row.
    """

    what: str
    table: str
    born: str
    doomed: str
    cutoff: float
    cascade: tuple[tuple[str, str], ...] = ()
    label: str = ""

    def __post_init__(self) -> None:
        self.label = f"{self.what} before {_when(self.cutoff)}"

    def _condition(self, db: Database) -> str:
        return self.doomed.format(p=db.param, at=self.born)

    def batches(self, db: Database, limit: int) -> Iterator[Batch]:
        p = db.param
        last = 0
        while True:
            window = _execute(db, f"SELECT id, {self.born}, CASE WHEN {self._condition(db)} THEN 1 ELSE 0 END "
                                  f"FROM {self.table} WHERE id > {p} ORDER BY id LIMIT {int(limit)}",
                              (self.cutoff, last)).fetchall()
            if not window:
                return
            doomed = [row[0] for row in window if row[2]]
            deleted, held = dict.fromkeys([self.table, *(t for t, _ in self.cascade)], 0), 0.0
            if doomed:
                with db.atomic():
                    started = time.perf_counter()
                    for table, column in self.cascade:
                        ids, params = _in(db, column, doomed)
                        deleted[table] += _execute(db, f"DELETE FROM {table} WHERE {ids}", params).rowcount
                    ids, params = _in(db, "id", doomed)
                    deleted[self.table] = _execute(db, f"DELETE FROM {self.table} WHERE {ids}", params).rowcount
                held = time.perf_counter() - started
            yield Batch(self.label, deleted, held)
            if len(window) < limit or any(born is not None and born >= self.cutoff for _, born, _ in window):
                return
            last = window[-1][0]

    def count(self, db: Database) -> dict[str, int]:
        condition = self._condition(db)
        counts = {self.table: int(_execute(db, f"SELECT COUNT(*) FROM {self.table} WHERE {condition}",
                                           (self.cutoff,)).fetchone()[0])}
        for table, column in self.cascade:
            counts[table] = int(_execute(
                db, f"SELECT COUNT(*) FROM {table} WHERE {column} IN "
                    f"(SELECT id FROM {self.table} WHERE {condition})", (self.cutoff,)).fetchone()[0])
        return counts


# -- SQL helpers ---------------------------------------------------------------------------------------------

def _in(db: Database, column: str, values: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
    """`column IN (…)` for SQLite; one array parameter on PostgreSQL (one statement text whatever the count)."""
    if is_sqlite(db):
        return f"{column} IN ({', '.join(['?'] * len(values))})", tuple(values)
    return f"{column} = ANY({db.param})", (list(values),)


def _execute(db: Database, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run one statement and return its cursor. PostgreSQL plans each one afresh (see webui.collector.rows:
    a generic plan made when the table was small would be kept as it grows)."""
    if is_sqlite(db):
        return db.execute_sql(sql, tuple(params))
    cursor = db.cursor()
    cursor.execute(sql, tuple(params), prepare=False)
    return cursor
