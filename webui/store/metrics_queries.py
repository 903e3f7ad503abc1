"""Reads for `/metrics`: every counter is a sum over stored rows, so it survives restarts of the UI.

What each total sums (docs/metrics.md says the same to users):
- received … rejected and the runtime histogram: every `task_minute` rollup row, i.e. the stream's task events
  (webui.collector.rollups), exact.
- sent and the queue-wait histogram: task rows, by id (no rollup counts `task-sent`). One per task with a
  `sent_at`; a task's wait is `started_at - sent_at` (or `- received_at` without a sent event).
- failed by exception class: task rows with a `failed_at` (the `task_failed_at` partial index), one per
  failed task, by the class at the start of its exception text.

Each family is read by its position (rollup minute, `failed_at`, task id), and rows below a boundary that trails
far enough behind no longer change: 2 days of rollup minutes (events more than a day off the collector's clock
are put in their arrival minute), a day of `failed_at`, and tasks received more than `TASK_SETTLE` seconds ago
up to the first one that was not (`task_boundary`: ids follow arrival, not `received_at`).
The price is that a task that starts more than `TASK_SETTLE` after a worker received it (an ETA task) adds no
wait observation, and a failure stamped more than a day in the past by a skewed clock may be missed.

The leading collector sums each settled row once into `task_total` and records how far those sums reach in
`metrics_checkpoint` (webui.store.metrics_checkpoint says how, and why retention can never make a row count twice
or not at all). A process starts from those sums, reads the rows above the checkpoint, and keeps in memory what
settles after (`_Settled`), so each scrape reads only the rows above its own boundary. Before the first
checkpoint (a new store, or an old one right after the upgrade that added it) a process sums every stored row
once itself, as slow as the store is big, with what retention had folded into `task_total`. Either way every
process gives the same totals.
"""
from __future__ import annotations

import bisect
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from peewee import fn

from webui.collector.rollups import BUCKET_COLUMNS, COUNT_COLUMNS
from webui.store import queue_queries
from webui.store.database import is_sqlite
from webui.store.models import CollectorGap, CollectorStatus, MetricsCheckpoint, Task, TaskMinute, TaskTotal, Worker

DAY = 86_400.0
ROLLUP_SETTLE = 2 * DAY
FAILURE_SETTLE = DAY
TASK_SETTLE = 300.0
QUEUE_WINDOW = 900.0  # a queue sampled in the last 15 minutes has a length series
EXCEPTION_MAX = 128
READ_ATTEMPTS = 10  # reads of the rows while the checkpoint keeps moving, before a scrape settles for the last
# ASCII classes spelled out, the same in Python and in PostgreSQL's regular expressions (`read_failures`), so a
# failure keeps its label in `task_total`, whichever database summed it.
_EXCEPTION_CLASS_PATTERN = r"[ \t\n\r\f\v]*([A-Za-z_][A-Za-z0-9_.]*)"
_EXCEPTION_CLASS = re.compile(_EXCEPTION_CLASS_PATTERN)
OVERFLOW = "+Inf"  # the label of the wait bucket above every bound, in `task_total`
ROLLUP_SUMS = (*COUNT_COLUMNS, "runtime_sum", *BUCKET_COLUMNS)  # what `read_rollups` sums, in its order

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
    """Per-key sums of rows: `frozen` holds the rows below `boundary` (None: none yet), summed once; the rows
    above are read each time."""

    def __init__(self, frozen: Sums, boundary: Any) -> None:
        self.frozen, self.boundary = frozen, boundary

    def totals(self, boundary: Any, read: Callable[[Any, Any], Sums]) -> Sums:
        """`read(lo, hi)` sums rows with lo <= position < hi (None: unbounded); `boundary` None: none settled."""
        if boundary is not None and (self.boundary is None or boundary > self.boundary):
            _add(self.frozen, read(self.boundary, boundary))
            self.boundary = boundary
        result = {key: list(values) for key, values in self.frozen.items()}
        _add(result, read(self.boundary, None))
        return result


# -- the rows, family by family -----------------------------------------------------------------------------


def rollup_boundary(now: float) -> int:
    """The first rollup minute that may still change."""
    return int((now - ROLLUP_SETTLE) // 60) * 60


def failure_boundary(now: float) -> float:
    return now - FAILURE_SETTLE


def task_boundary(now: float, lo: int | None = None) -> int | None:
    """The id below which task rows are final: past the newest task received `TASK_SETTLE` ago (index
    `task_received_at`), but no further than the first task from `lo` on received since.

    Ids follow arrival, not `received_at`: a task whose events come late (a worker's clock behind, events a broker
    held through a failover) arrives settled with the newest id, above tasks still waiting to start, and may be
    the newest received before the cutoff. Passing it would freeze those without their wait. The second look
    scans ids from `lo`, the rows a read sums anyway; without `lo` (no checkpoint yet), the `TASK_SETTLE` seconds
    of `task_received_at`, not every id."""
    cutoff = now - TASK_SETTLE
    newest = Task.select(Task.id).where(Task.received_at < cutoff).order_by(Task.received_at.desc()).limit(1).first()
    if newest is None:
        return None
    boundary = int(newest.id) + 1
    if lo is None:  # `id + 0`: the least id of the recent rows, not a walk along the primary key until one
        first = Task.select(fn.MIN(Task.id + 0)).where(Task.received_at >= cutoff).scalar()
    else:
        first = (Task.select(Task.id).where(Task.received_at >= cutoff, Task.id >= lo, Task.id < boundary)
                 .order_by(Task.id).limit(1).scalar())
    return min(boundary, int(first)) if first is not None else boundary


def read_rollups(lo: int | None, hi: int | None) -> Sums:
    query: Any = TaskMinute.select(TaskMinute.name, *(fn.SUM(getattr(TaskMinute, c)) for c in ROLLUP_SUMS))
    if lo is not None:
        query = query.where(TaskMinute.minute >= lo)
    if hi is not None:
        query = query.where(TaskMinute.minute < hi)
    return {name: [float(v or 0) for v in values] for name, *values in query.group_by(TaskMinute.name).tuples()}


def exception_class(text: str | None) -> str:
    """The class an exception text starts with (`ValueError('x')` → `ValueError`), else "unknown"."""
    match = _EXCEPTION_CLASS.match(text or "")
    return match.group(1)[:EXCEPTION_MAX] if match else "unknown"


def read_failures(lo: float | None, hi: float | None) -> Sums:
    database = Task._meta.database
    if not is_sqlite(getattr(database, "obj", None) or database):  # the models' proxy, or a database itself
        return _read_failures_grouped(lo, hi)
    query: Any = Task.select(Task.name, Task.exception).where(Task.failed_at.is_null(False))
    if lo is not None:
        query = query.where(Task.failed_at >= lo)
    if hi is not None:
        query = query.where(Task.failed_at < hi)
    sums: Sums = {}
    for name, exception in query.tuples().iterator():
        _add(sums, {(name or "", exception_class(exception)): [1.0]})
    return sums


def _read_failures_grouped(lo: float | None, hi: float | None) -> Sums:
    """`read_failures` grouped by PostgreSQL itself (hundreds of thousands of failures on a big store)."""
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
    sql = (f"SELECT COALESCE(name, ''), LEFT(substring(exception from {p}), {EXCEPTION_MAX}) AS class, COUNT(*) "
           f"FROM task WHERE {' AND '.join(where)} GROUP BY 1, 2")
    sums: Sums = {}
    for name, label, count in db.execute_sql(sql, params).fetchall():
        _add(sums, {(name, label or "unknown"): [float(count)]})
    return sums


def task_reader(wait_bounds: Sequence[float]) -> Callable[[int | None, int | None], Sums]:
    """Per name: [sent, wait bucket counts…, wait sum in µs], over task ids lo <= id < hi.

    Before the first checkpoint a process sums every settled task, 10 million of them on a big store (and so does
    the checkpoint's first advance). PostgreSQL counts `wait <= bound` per name in one parallel pass, and no task
    row comes to Python. SQLite hands over each row's name, bucket and wait, streamed: grouping there would sort
    every row in a temporary b-tree, 110 MB of this process's memory at 1M tasks (temp_store is memory). Bucket i
    holds the waits at or below bound i and above the one before (`bisect_left`). Waits are summed in whole
    microseconds, so the sum is exact whatever order the rows are added in, and every process reports the same.
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
        sums: Sums = {}
        width = len(wait_bounds) + 3

        def row_of(name: str) -> list[float]:
            row = sums.get(name)
            if row is None:
                row = sums[name] = [0.0] * width
            return row

        if sqlite:
            cursor = db.execute_sql(f"SELECT name, {bucket}, sent_at IS NOT NULL, {wait_us} FROM ({rows}) AS settled",
                                    params)
            for name, index, sent, waited in cursor:  # iterated, not fetched: a row a task
                row = row_of(name)
                row[0] += sent
                if index >= 0:
                    row[1 + index] += 1
                    row[-1] += waited  # µs until `TaskTotalsReader.read`: integers add up exactly
            return sums
        cursor = db.execute_sql(f"SELECT name, COUNT(sent_at), COUNT(wait), SUM({wait_us}), {at_or_below} "
                                f"FROM ({rows}) AS settled GROUP BY 1", params)
        for name, *counts in cursor:
            sent, waits, waited, *within = (int(c or 0) for c in counts)
            row = row_of(name)
            row[0] += sent
            for i, (count, below) in enumerate(zip([*within, waits], [0, *within], strict=True)):
                row[1 + i] += count - below
            row[-1] += waited
        return sums

    return read


# -- the checkpoint: what the leading collector summed for every process ------------------------------------


@dataclass(frozen=True)
class Covered:
    """How far the checkpoint's sums in `task_total` reach: task ids below `tasks`, failures stamped before
    `failures`, rollup minutes before `minutes`."""

    tasks: int
    failures: float
    minutes: int


def checkpoint() -> Covered | None:
    """The checkpoint's boundaries (one row by key); None until the leading collector first advances it."""
    row = (MetricsCheckpoint.select(MetricsCheckpoint.task_below, MetricsCheckpoint.failed_below,
                                    MetricsCheckpoint.minute_below)
           .where(MetricsCheckpoint.id == 1).tuples().first())
    return Covered(int(row[0]), float(row[1]), int(row[2])) if row else None


def settled_sums(wait_bounds: Sequence[float]) -> tuple[Sums, Sums, Sums]:
    """`task_total` as each family's sums (rollups, failures, tasks), the tasks' under these wait buckets."""
    rollups: Sums = {}
    failures: Sums = {}
    tasks: Sums = {}
    query: Any = TaskTotal.select(TaskTotal.name, TaskTotal.metric, TaskTotal.label, TaskTotal.value).tuples()
    for name, metric, label, value in query:
        if metric == "rollup":
            rollups.setdefault(name, [0.0] * len(ROLLUP_SUMS))[ROLLUP_SUMS.index(label)] += value
        elif metric == "failed":
            _add(failures, {(name, label): [float(value)]})
        else:
            _add_folded(tasks.setdefault(name, [0.0] * (len(wait_bounds) + 3)), metric, label, value, wait_bounds)
    return rollups, failures, tasks


def _add_folded(row: list[float], metric: str, label: str, value: float, wait_bounds: Sequence[float]) -> None:
    """A `task_total` value into a task reader's row. A bucket summed under other `metrics_wait_buckets` goes to
    the first bound at or above its own: no observation is counted under a bound it may exceed."""
    if metric == "sent":
        row[0] += value
    elif metric == "wait_us":
        row[-1] += value
    elif metric == "wait":
        bucket = len(wait_bounds) if label == OVERFLOW else bisect.bisect_left(wait_bounds, float(label))
        row[1 + bucket] += value


# -- task totals ------------------------------------------------------------------------------------------


@dataclass
class TaskTotals:
    """Per task name ("" when unknown): event counts, runtime and wait histograms, failures by class."""

    counts: dict[str, dict[str, int]]  # name -> {"received": n, …, "sent": n}
    runtime: dict[str, tuple[list[int], float]]  # name -> (counts per RUNTIME_BOUNDS bucket + overflow, sum)
    wait: dict[str, tuple[list[int], float]]  # name -> (counts per wait bound + overflow, sum)
    failures: dict[tuple[str, str], int]  # (name, exception class) -> failed tasks


class TaskTotalsReader:
    """Holds one process's settled sums; `read()` gives the totals now. Wait buckets are fixed per reader."""

    def __init__(self, wait_bounds: tuple[float, ...]) -> None:
        self.wait_bounds = wait_bounds
        self.lock = threading.Lock()
        self.began_at: Covered | None = None  # the checkpoint the sums below start from
        self.families: tuple[_Settled[str], _Settled[tuple[str, str]], _Settled[str]] | None = None

    def read(self, now: float | None = None) -> TaskTotals:
        now = time.time() if now is None else now
        with self.lock:
            for _ in range(READ_ATTEMPTS):
                covered = checkpoint()
                if self.families is None or covered != self.began_at:
                    self._begin_at(covered)
                sums = self._sums(now)
                # Read the checkpoint on both sides of the rows: once it moves, retention may delete rows this read
                # expected above it (and its first advance adds to `task_total` what was read here as rows).
                if checkpoint() == covered:
                    break
        return _totals(*sums)

    def _begin_at(self, covered: Covered | None) -> None:
        rollups, failures, tasks = settled_sums(self.wait_bounds)
        self.began_at = covered
        if covered is None:  # no checkpoint yet: every stored row, once, with what retention folded in before
            self.families = (_Settled(rollups, None), _Settled(failures, None), _Settled(tasks, None))
        else:
            self.families = (_Settled(rollups, covered.minutes), _Settled(failures, covered.failures),
                             _Settled(tasks, covered.tasks))

    def _sums(self, now: float) -> tuple[Sums, Sums, Sums]:
        assert self.families is not None
        rollups, failures, tasks = self.families
        return (rollups.totals(rollup_boundary(now), read_rollups),
                failures.totals(failure_boundary(now), read_failures),
                tasks.totals(task_boundary(now, tasks.boundary), task_reader(self.wait_bounds)))


def _totals(rollups: Sums, failures: Sums, tasks: Sums) -> TaskTotals:
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

