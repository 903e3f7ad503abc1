"""Queries of the workers pages: each worker's heartbeat row joined with its latest inspect replies, its
recent tasks and last 24 h, read through the (worker, id) index and bounded; and forgetting a worker.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from peewee import fn

from webui import fastjson
from webui.store.models import Task, Worker, WorkerEvent, WorkerInspection

TRANSITIONS_SHOWN = 50
RECENT_TASKS = 20
STATS_WINDOW = 24 * 3600.0
# The 24 h stats read at most this many of the worker's newest tasks (an index range, never the whole table);
# past it the page says "from the last 10,000 tasks" instead of "last 24 h".
STATS_TASK_LIMIT = 10_000
# The list's failure counts read at most this many of the newest failures of the last 24 h (partial index).
FAILURES_LIMIT = 10_000


@dataclass
class WorkerView:
    """One worker as the pages show it: the `worker` row, plus what the last inspection said (if any)."""

    worker: Worker
    inspected_at: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    now: float = field(default_factory=time.time)

    @property
    def inspection_age(self) -> float | None:
        return None if self.inspected_at is None else max(0.0, self.now - self.inspected_at)

    @property
    def stats(self) -> dict[str, Any]:
        return _dict(self.data.get("stats"))

    @property
    def pool(self) -> dict[str, Any]:
        return _dict(self.stats.get("pool"))

    @property
    def pool_name(self) -> str:
        """`celery.concurrency.prefork:TaskPool` → `prefork`."""
        name = str(self.pool.get("implementation") or "—")
        return name.removeprefix("celery.concurrency.").split(":")[0]

    @property
    def concurrency(self) -> Any:
        return self.pool.get("max-concurrency")

    @property
    def queues(self) -> list[str]:
        return [str(q.get("name")) for q in _list(self.data.get("active_queues")) if isinstance(q, dict)]

    @property
    def loadavg(self) -> list[Any]:
        try:
            value = json.loads(self.worker.loadavg) if self.worker.loadavg else []
        except ValueError:
            return []
        return value if isinstance(value, list) else []

    @property
    def clock_skew(self) -> float | None:
        """The worker's clock minus the collector's, at the last heartbeat (timezones are not skew)."""
        w = self.worker
        if w.heartbeat_timestamp is None or w.last_heartbeat is None:
            return None
        return float(w.heartbeat_timestamp - w.last_heartbeat)

    def pairs(self, value: Any) -> list[tuple[str, str]]:
        """A reply's dict (conf, rusage, stats.total) as sorted (key, text) pairs; non-text values as JSON."""
        return sorted((str(k), v if isinstance(v, str) else fastjson.dumps(v)) for k, v in _dict(value).items())

    def replies(self, command: str) -> list[Any]:
        """A list reply (active, reserved, scheduled, revoked, registered), empty when not inspected yet."""
        return _list(self.data.get(command))


@dataclass
class WorkerStats:
    """A worker's tasks received in the window: `partial` when the window held more than `scanned` tasks."""

    since: float
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    other_finished: int = 0  # revoked, rejected
    runtime_total: float = 0.0
    runtime_count: int = 0
    scanned: int = 0
    partial: bool = False

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed + self.other_finished

    @property
    def success_rate(self) -> float | None:
        done = self.succeeded + self.failed
        return self.succeeded / done if done else None

    @property
    def average_runtime(self) -> float | None:
        return self.runtime_total / self.runtime_count if self.runtime_count else None


def visible() -> Any:
    """Workers not forgotten: never forgotten, or seen (any event) after they were."""
    return Worker.forgotten_at.is_null() | (Worker.last_seen > Worker.forgotten_at)


def list_workers() -> tuple[list[WorkerView], list[WorkerView]]:
    """Every worker not forgotten, online ones first, each with its inspection; as (online, offline)."""
    inspections = {i.hostname: i for i in WorkerInspection.select()}
    now = time.time()
    views = [_view(w, inspections.get(w.hostname), now)
             for w in Worker.select().where(visible()).order_by(Worker.hostname)]
    return [v for v in views if v.worker.online], [v for v in views if not v.worker.online]


def forgotten_count() -> int:
    return int(Worker.select().where(~visible()).count())


def failures_by_worker(now: float | None = None, limit: int = FAILURES_LIMIT) -> tuple[dict[str, int], bool]:
    """Failures in the last 24 h per worker, from at most `limit` newest ones; (counts, limit reached)."""
    since = (now or time.time()) - STATS_WINDOW
    # failed_at alone (not state): its partial index is a range of the last 24 h; (state, id) would be every
    # failure ever. Counted by the database: 10,000 rows through the ORM cost ~100 ms of Python.
    newest = (Task.select(Task.worker).where(Task.failed_at >= since).order_by(Task.failed_at.desc())
              .limit(limit).alias("newest"))
    query: Any = Task.select(newest.c.worker, fn.COUNT(1)).from_(newest).group_by(newest.c.worker).tuples()
    counts: dict[str, int] = {}
    total = 0
    for worker, count in query:
        total += int(count)
        if worker:
            counts[worker] = int(count)
    return counts, total >= limit


def forget(hostname: str) -> str:
    """Hide an offline worker until it sends an event again: "forgotten", "online" or "unknown".

    The collector's writer never writes `forgotten_at`, so it cannot undo this from its in-memory images;
    its next write of this worker comes with a new event, whose `last_seen` is later than `forgotten_at`.
    """
    updated = (Worker.update(forgotten_at=Worker.last_seen)
               .where(Worker.hostname == hostname, Worker.online == False)  # noqa: E712 - SQL, not Python
               .execute())
    if updated:
        return "forgotten"
    worker = Worker.get_or_none(Worker.hostname == hostname)
    return "unknown" if worker is None else "online"


def is_forgotten(worker: Worker) -> bool:
    return worker.forgotten_at is not None and worker.last_seen <= worker.forgotten_at


def recent_tasks(hostname: str, limit: int = RECENT_TASKS) -> list[Task]:
    """The worker's newest tasks (in the order this monitor first saw them): one range of (worker, id)."""
    return list(Task.select(Task.uuid, Task.name, Task.state, Task.received_at, Task.started_at, Task.runtime)
                .where(Task.worker == hostname).order_by(Task.id.desc()).limit(limit))


def last_24h(hostname: str, now: float | None = None, limit: int = STATS_TASK_LIMIT) -> WorkerStats:
    """Counts by state and runtimes of the tasks the worker received in the last 24 h.

    Reads the worker's newest `limit` tasks from the (worker, id) index, then keeps those received in the
    window: bounded whatever the table holds. When all `limit` fall in the window it may hold more: `partial`.
    """
    stats = WorkerStats(since=(now or time.time()) - STATS_WINDOW)
    received = fn.COALESCE(Task.received_at, Task.started_at)
    newest = (Task.select(Task.state, Task.runtime, received.alias("received"))
              .where(Task.worker == hostname).order_by(Task.id.desc()).limit(limit).alias("newest"))
    in_window = newest.c.received >= stats.since
    query = (Task.select(newest.c.state, fn.COUNT(1), fn.SUM(in_window.cast("integer")),
                         fn.SUM(newest.c.runtime).filter(in_window), fn.COUNT(newest.c.runtime).filter(in_window))
             .from_(newest).group_by(newest.c.state).tuples())
    rows: list[tuple[str, int, Any, Any, Any]] = list(query)  # type: ignore[arg-type]  # stubs miss .tuples()
    oldest_in_window = True
    for state, scanned, in_win, runtime_sum, runtime_count in rows:
        stats.scanned += scanned
        count = int(in_win or 0)
        oldest_in_window = oldest_in_window and count == scanned
        stats.received += count
        if state == "SUCCESS":
            stats.succeeded += count
        elif state == "FAILURE":
            stats.failed += count
        elif state in ("REVOKED", "REJECTED"):
            stats.other_finished += count
        stats.runtime_total += float(runtime_sum or 0.0)
        stats.runtime_count += int(runtime_count or 0)
    stats.partial = stats.scanned >= limit and oldest_in_window
    return stats


def worker_detail(hostname: str) -> WorkerView | None:
    worker = Worker.get_or_none(Worker.hostname == hostname)
    if worker is None:
        return None
    inspection = WorkerInspection.get_or_none(WorkerInspection.hostname == hostname)
    return _view(worker, inspection, time.time())


def transitions(worker: Worker, limit: int = TRANSITIONS_SHOWN) -> list[WorkerEvent]:
    """The worker's latest online/offline transitions, newest first."""
    return list(WorkerEvent.select().where(WorkerEvent.worker_id == worker.id)  # type: ignore[attr-defined]
                .order_by(WorkerEvent.at.desc(), WorkerEvent.id.desc()).limit(limit))  # type: ignore[attr-defined]


def _view(worker: Worker, inspection: WorkerInspection | None, now: float) -> WorkerView:
    if inspection is None:
        return WorkerView(worker, now=now)
    try:
        data = json.loads(inspection.data) if inspection.data else {}
    except ValueError:
        data = {}
    return WorkerView(worker, inspection.at, _dict(data), inspection.error, now)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
