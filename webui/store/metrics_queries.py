"""Reads for `/metrics`: every counter is a sum over stored rows, so it survives restarts of the UI.

What each total sums (docs/metrics.md says the same to users):
- received … rejected and the runtime histogram: every `task_minute` rollup row, i.e. the stream's task events
  (webui.collector.rollups), exact. Retention folds the minutes it prunes into each name's row at minute 0.
- sent and the queue-wait histogram: task rows, by id (no rollup counts `task-sent`). One per task with a
  `sent_at`; a task's wait is `started_at - sent_at` (or `- received_at` without a sent event).
- failed by exception class: task rows with a `failed_at` (the `task_failed_at` partial index), one per
  failed task, by the class at the start of its exception text.
- what retention pruned from those task rows: `task_total` (`fold_tasks` says what a row adds), read in the same
  statement as the oldest rows, so a prune committing between two reads can't count a row twice or miss it.

Rows below a moving boundary are summed once per process and kept (`_Settled`); each scrape then reads only the
rows above it. The boundary trails far enough behind that rows under it no longer change: 2 days of rollup
minutes (events more than a day off the collector's clock are put in their arrival minute), a day of
`failed_at`, and tasks received more than `TASK_SETTLE` seconds ago. So every process gives the same totals; the
price is that a task that starts more than `TASK_SETTLE` after a worker received it (an ETA task) adds no wait
observation, and a failure stamped more than a day in the past by a skewed clock may be missed.
"""
from __future__ import annotations

import bisect
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from peewee import SQL, fn

from webui.collector.rollups import BUCKET_COLUMNS, COUNT_COLUMNS
from webui.store import queue_queries
from webui.store.database import is_sqlite
from webui.store.models import CollectorGap, CollectorStatus, Task, TaskMinute, TaskTotal, Worker

DAY = 86_400.0
ROLLUP_SETTLE = 2 * DAY
FAILURE_SETTLE = DAY
TASK_SETTLE = 300.0
QUEUE_WINDOW = 900.0  # a queue sampled in the last 15 minutes has a length series
EXCEPTION_MAX = 128
# ASCII classes spelled out, the same in Python and in PostgreSQL's regular expressions (`_read_failures`), so a
# failure keeps its label when retention folds its row into `task_total`.
_EXCEPTION_CLASS_PATTERN = r"[ \t\n\r\f\v]*([A-Za-z_][A-Za-z0-9_.]*)"
_EXCEPTION_CLASS = re.compile(_EXCEPTION_CLASS_PATTERN)
_NULL = SQL("NULL")
OVERFLOW = "+Inf"  # the label of the wait bucket above every bound, in `task_total`

K = TypeVar("K")
Sums = dict[Any, list[float]]


def _add(into: Sums, more: Sums) -> None:
    for key, values in more.items():
        have = into.get(key)
        if have is None:
            into[key] = list(values)
        else:
            for i, value in enumerate(values):
                have[i] += value


class _Settled(Generic[K]):
    """Per-key sums of rows, where rows below `boundary` are read once and kept, the rest read each time."""

    def __init__(self) -> None:
        self.boundary: Any = None
        self.frozen: Sums = {}
        self.lock = threading.Lock()

    def totals(self, boundary: Any, read: Callable[[Any, Any], Sums]) -> Sums:
        """`read(lo, hi)` sums rows with lo <= position < hi (None: unbounded)."""
        with self.lock:
            if self.boundary is None:
                self.frozen, self.boundary = read(None, boundary), boundary
            elif boundary > self.boundary:
                _add(self.frozen, read(self.boundary, boundary))
                self.boundary = boundary
            result = {key: list(values) for key, values in self.frozen.items()}
            _add(result, read(self.boundary, None))
        return result


# -- task totals ------------------------------------------------------------------------------------------


@dataclass
class TaskTotals:
    """Per task name ("" when unknown): event counts, runtime and wait histograms, failures by class."""

    counts: dict[str, dict[str, int]]  # name -> {"received": n, …, "sent": n}
    runtime: dict[str, tuple[list[int], float]]  # name -> (counts per RUNTIME_BOUNDS bucket + overflow, sum)
    wait: dict[str, tuple[list[int], float]]  # name -> (counts per wait bound + overflow, sum)
    failures: dict[tuple[str, str], int]  # (name, exception class) -> failed tasks


def _read_rollups(lo: int | None, hi: int | None) -> Sums:
    columns = (*COUNT_COLUMNS, "runtime_sum", *BUCKET_COLUMNS)
    query: Any = TaskMinute.select(TaskMinute.name, *(fn.SUM(getattr(TaskMinute, c)) for c in columns))
    if lo is not None:
        query = query.where(TaskMinute.minute >= lo)
    if hi is not None:
        query = query.where(TaskMinute.minute < hi)
    return {name: [float(v or 0) for v in values] for name, *values in query.group_by(TaskMinute.name).tuples()}


def exception_class(text: str | None) -> str:
    """The class an exception text starts with (`ValueError('x')` → `ValueError`), else "unknown"."""
    match = _EXCEPTION_CLASS.match(text or "")
    return match.group(1)[:EXCEPTION_MAX] if match else "unknown"


def _read_failures(lo: float | None, hi: float | None) -> Sums:
    database = Task._meta.database
    if not is_sqlite(getattr(database, "obj", None) or database):  # the models' proxy, or a database itself
        return _read_failures_grouped(lo, hi)
    query: Any = Task.select(Task.name, Task.exception, _NULL).where(Task.failed_at.is_null(False))
    if lo is not None:
        query = query.where(Task.failed_at >= lo)
    if hi is not None:
        query = query.where(Task.failed_at < hi)
    if lo is None:  # the oldest rows, with those retention pruned
        query = query.union_all(TaskTotal.select(TaskTotal.name, TaskTotal.label, TaskTotal.value)
                                .where(TaskTotal.metric == "failed"))
    sums: Sums = {}
    for name, exception, folded in query.tuples().iterator():
        if folded is None:
            _add(sums, {(name or "", exception_class(exception)): [1.0]})
        else:
            _add(sums, {(name, exception): [float(folded)]})
    return sums


def _read_failures_grouped(lo: float | None, hi: float | None) -> Sums:
    """`_read_failures` grouped by PostgreSQL itself (hundreds of thousands of failures on a big store)."""
    db = Task._meta.database
    p = db.param
    where = ["failed_at IS NOT NULL"]
    params: list[Any] = [f"^{_EXCEPTION_CLASS_PATTERN}"]
    if lo is not None:
        where.append(f"failed_at >= {p}")
        params.append(lo)
    if hi is not None:
        where.append(f"failed_at < {p}")
        params.append(hi)
    sql = (f"SELECT COALESCE(name, ''), LEFT(substring(exception from {p}), {EXCEPTION_MAX}) AS class, COUNT(*), "
           f"NULL FROM task WHERE {' AND '.join(where)} GROUP BY 1, 2")
    if lo is None:  # with the failures retention pruned, in the same statement
        sql += " UNION ALL SELECT name, label, NULL, value FROM task_total WHERE metric = 'failed'"
    sums: Sums = {}
    for name, label, count, folded in db.execute_sql(sql, params).fetchall():
        if folded is None:
            _add(sums, {(name, label or "unknown"): [float(count)]})
        else:
            _add(sums, {(name, label): [float(folded)]})
    return sums


def _wait_bucket(wait_bounds: Sequence[float], queued_at: float | None, started_at: float | None) -> int | None:
    """The wait histogram's bucket a task falls in (len(wait_bounds): above them all); None: it has no wait."""
    if started_at is None or queued_at is None:
        return None
    return bisect.bisect_left(wait_bounds, max(0.0, started_at - queued_at))


def fold_tasks(rows: Iterable[tuple[Any, ...]], wait_bounds: Sequence[float]) -> dict[tuple[str, str, str], float]:
    """What task rows (name, sent_at, received_at, started_at, failed_at, exception) add to the totals, as
    `task_total` values by (name, metric, label): retention adds them there when it deletes the rows."""
    folded: dict[tuple[str, str, str], float] = {}

    def add(key: tuple[str, str, str], value: float) -> None:
        folded[key] = folded.get(key, 0.0) + value

    for name, sent_at, received_at, started_at, failed_at, exception in rows:
        name = name or ""
        if sent_at is not None:
            add((name, "sent", ""), 1)
        queued_at = sent_at if sent_at is not None else received_at
        bucket = _wait_bucket(wait_bounds, queued_at, started_at)
        if bucket is not None:
            add((name, "wait", repr(float(wait_bounds[bucket])) if bucket < len(wait_bounds) else OVERFLOW), 1)
            add((name, "wait_sum", ""), round(max(0.0, started_at - queued_at) * 1_000_000))  # µs, as the reader
        if failed_at is not None:
            add((name, "failed", exception_class(exception)), 1)
    return {key: value / 1_000_000 if key[1] == "wait_sum" else value for key, value in folded.items()}


def _task_reader(wait_bounds: Sequence[float]) -> Callable[[int | None, int | None], Sums]:
    """Per name: [sent, wait bucket counts…, wait sum in µs], over task ids lo <= id < hi.

    The first scrape of a process sums every settled task, 10 million of them on a big store. PostgreSQL counts
    `wait <= bound` per name in one parallel pass, and no task row comes to Python. SQLite hands over each row's
    name, bucket and wait, streamed: grouping there would sort every row in a temporary b-tree, 110 MB of this
    process's memory at 1M tasks (temp_store is memory). Bucket i holds the waits at or below bound i and above
    the one before (`bisect_left`). Waits are summed in whole microseconds, so the sum is exact whatever order
    the rows are added in, and every process reports the same value.
    """
    wait_us = "CAST(ROUND((CASE WHEN wait < 0 THEN 0.0 ELSE wait END) * 1000000) AS BIGINT)"
    bucket = ("CASE WHEN wait IS NULL THEN -1 "
              + " ".join(f"WHEN wait <= {float(bound)!r} THEN {i}" for i, bound in enumerate(wait_bounds))
              + f" ELSE {len(wait_bounds)} END")
    at_or_below = ", ".join(f"SUM(CASE WHEN wait <= {float(bound)!r} THEN 1 ELSE 0 END)" for bound in wait_bounds)

    def read(lo: int | None, hi: int | None) -> Sums:
        db = Task._meta.database
        sqlite = is_sqlite(getattr(db, "obj", None) or db)
        p = db.param
        where: list[str] = []
        params: list[Any] = []
        if lo is not None:
            where.append(f"id >= {p}")
            params.append(lo)
        if hi is not None:
            where.append(f"id < {p}")
            params.append(hi)
        # NOT INDEXED: SQLite would otherwise group along the name index and read every row through it.
        rows = (f"SELECT COALESCE(name, '') AS name, sent_at, started_at - COALESCE(sent_at, received_at) AS wait "
                f"FROM task{' NOT INDEXED' if sqlite else ''}{' WHERE ' + ' AND '.join(where) if where else ''}")
        if sqlite:
            sql = f"SELECT name, NULL, NULL, NULL, {bucket}, sent_at IS NOT NULL, 1, {wait_us}"
            group = ""
        else:
            sql = f"SELECT name, NULL, NULL, NULL, COUNT(sent_at), COUNT(wait), SUM({wait_us}), {at_or_below}"
            group = " GROUP BY 1"
        columns = 8 if sqlite else 7 + len(wait_bounds)
        sql += f" FROM ({rows}) AS settled{group}"
        if lo is None:  # the oldest rows, with those retention pruned, in one statement (one snapshot)
            sql += (f" UNION ALL SELECT name, metric, label, value{', NULL' * (columns - 4)} FROM task_total "
                    "WHERE metric <> 'failed'")
        sums: Sums = {}
        width = len(wait_bounds) + 3

        def row_of(name: str | None) -> list[float]:
            row = sums.get(name or "")
            if row is None:
                row = sums[name or ""] = [0.0] * width
            return row

        cursor = db.execute_sql(sql, params)  # iterated, not fetched: a row a task on SQLite
        if sqlite:
            for name, metric, label, value, index, sent, _, waited in cursor:
                row = sums.get(name) or row_of(name)
                if metric is not None:
                    _add_folded(row, str(metric), str(label), float(value), wait_bounds)
                    continue
                row[0] += sent
                if index >= 0:
                    row[1 + index] += 1
                    row[-1] += waited  # µs until `TaskTotalsReader.read`: integers add up exactly
            return sums
        for name, metric, label, value, *counts in cursor:
            row = row_of(name)
            if metric is not None:
                _add_folded(row, str(metric), str(label), float(value), wait_bounds)
                continue
            sent, waits, waited, *within = (int(c or 0) for c in counts)
            row[0] += sent
            for i, (count, below) in enumerate(zip([*within, waits], [0, *within], strict=True)):
                row[1 + i] += count - below
            row[-1] += waited
        return sums

    return read


def _add_folded(row: list[float], metric: str, label: str, value: float, wait_bounds: Sequence[float]) -> None:
    """A `task_total` value into a reader's row. A bucket folded under other `metrics_wait_buckets` goes to the
    first bound at or above its own: no observation is counted under a bound it may exceed."""
    if metric == "sent":
        row[0] += value
    elif metric == "wait_sum":
        row[-1] += round(value * 1_000_000)  # the reader sums whole microseconds
    elif metric == "wait":
        bucket = len(wait_bounds) if label == OVERFLOW else bisect.bisect_left(wait_bounds, float(label))
        row[1 + bucket] += value


def _task_boundary(now: float) -> int | None:
    """The id of the newest task received `TASK_SETTLE` ago (index `task_received_at`); rows below it are final."""
    row = (Task.select(Task.id).where(Task.received_at < now - TASK_SETTLE)
           .order_by(Task.received_at.desc()).limit(1).first())
    return int(row.id) if row is not None else None


@dataclass
class TaskTotalsReader:
    """Holds one process's settled sums; `read()` gives the totals now. Wait buckets are fixed per reader."""

    wait_bounds: tuple[float, ...]
    rollups: _Settled[str] = field(default_factory=_Settled)
    failures: _Settled[tuple[str, str]] = field(default_factory=_Settled)
    tasks: _Settled[str] = field(default_factory=_Settled)

    def read(self, now: float | None = None) -> TaskTotals:
        now = time.time() if now is None else now
        rollups = self.rollups.totals(int((now - ROLLUP_SETTLE) // 60) * 60, _read_rollups)
        failures = self.failures.totals(now - FAILURE_SETTLE, _read_failures)
        boundary = _task_boundary(now)
        reader = _task_reader(self.wait_bounds)
        tasks = self.tasks.totals(boundary, reader) if boundary is not None else reader(None, None)
        n = len(COUNT_COLUMNS)
        counts = {name: {c: int(v) for c, v in zip(COUNT_COLUMNS, values[:n], strict=True)}
                  for name, values in rollups.items()}
        runtime = {name: ([int(v) for v in values[n + 1:]], values[n]) for name, values in rollups.items()}
        wait: dict[str, tuple[list[int], float]] = {}
        for name, values in tasks.items():
            counts.setdefault(name, dict.fromkeys(COUNT_COLUMNS, 0))["sent"] = int(values[0])
            if sum(values[1:-1]):
                wait[name] = ([int(v) for v in values[1:-1]], values[-1] / 1_000_000)
        for per_name in counts.values():
            per_name.setdefault("sent", 0)
        return TaskTotals(counts, runtime, wait, {key: int(v[0]) for key, v in failures.items()})


# -- gauges -----------------------------------------------------------------------------------------------


@dataclass
class WorkerSeries:
    hostname: str
    online: bool
    active: int


def workers(expiry: float, now: float | None = None) -> list[WorkerSeries]:
    """Online workers, and offline ones that went offline less than `expiry` seconds ago; never forgotten ones."""
    now = time.time() if now is None else now
    series = []
    query: Any = Worker.select(Worker.hostname, Worker.online, Worker.active, Worker.status_changed_at,
                               Worker.last_seen, Worker.forgotten_at).order_by(Worker.hostname).tuples()
    for hostname, online, active, changed_at, last_seen, forgotten_at in query:
        if forgotten_at is not None and last_seen <= forgotten_at:
            continue
        if not online and (changed_at or last_seen) < now - expiry:
            continue
        series.append(WorkerSeries(hostname, bool(online), int(active or 0) if online else 0))
    return series


@dataclass
class QueueSeries:
    name: str
    depth: int | None
    consumers: int | None
    workers: int


def queues(now: float | None = None) -> list[QueueSeries]:
    """Queues sampled in the last `QUEUE_WINDOW` seconds: latest depth, consumers, consuming online workers."""
    views = queue_queries.queue_overview(window=QUEUE_WINDOW, now=now)
    return [QueueSeries(v.name, v.latest.depth, v.consumer_count, len(v.workers))
            for v in sorted(views, key=lambda v: v.name)]


@dataclass
class CollectorHealth:
    known: bool
    connected: bool = False
    heartbeat_age: float | None = None
    last_event_age: float | None = None
    events_total: int = 0
    events_malformed: int = 0
    events_dropped: int = 0
    gaps_total: int = 0
    gaps_open: int = 0
    events_lost: int = 0


def collector(now: float | None = None) -> CollectorHealth:
    now = time.time() if now is None else now
    status = CollectorStatus.get_or_none(CollectorStatus.id == 1)  # type: ignore[attr-defined]
    gaps: Any = CollectorGap.select(fn.COUNT(CollectorGap.started_at), fn.SUM(CollectorGap.events_lost)).tuples()
    gaps_total, lost = next(iter(gaps))
    gaps_open = CollectorGap.select().where(CollectorGap.ended_at.is_null()).count()
    if status is None:
        return CollectorHealth(False, gaps_total=int(gaps_total or 0), gaps_open=gaps_open, events_lost=int(lost or 0))
    return CollectorHealth(
        True, bool(status.connected), max(0.0, now - status.heartbeat_at),
        max(0.0, now - status.last_event_at) if status.last_event_at else None,
        int(status.events_total or 0), int(status.events_malformed or 0), int(status.events_dropped or 0),
        int(gaps_total or 0), gaps_open, int(lost or 0))

