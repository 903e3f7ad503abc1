"""Read queries of the overview: rollups (`task_minute`) and bounded reads, never a scan of the task table.

Each query's cost depends on the window and the number of task names, not on how many tasks are stored:
the counts and charts read at most a day of `task_minute` rows; the exceptions read at most
`MAX_FAILURES_READ` rows of the `task_failed_at` index; the feed reads the newest rows of `task_event_received`.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from peewee import fn

from webui.collector.rollups import BUCKET_COLUMNS, percentile
from webui.store.models import CollectorGap, Task, TaskEvent, TaskMinute, Worker

MINUTE = 60
HOUR = 3600
DAY = 86_400
TREND_BIN = 15 * MINUTE  # the 24 h trend's resolution: 96 bins
MAX_FAILURES_READ = 1000
_SUMMED = ("received", "succeeded", "failed", "retried", "revoked")
_EXCEPTION_CLASS = re.compile(r"\s*([A-Za-z_][\w.]*)")


@dataclass
class Totals:
    """Task events counted in a window (see webui.collector.rollups for what is counted)."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    revoked: int = 0

    def add(self, values: Iterable[int]) -> None:
        for column, value in zip(_SUMMED, values, strict=True):
            setattr(self, column, getattr(self, column) + int(value or 0))

    @property
    def success_rate(self) -> float | None:
        """succeeded / (succeeded + failed); retries are not failures. None when nothing finished."""
        finished = self.succeeded + self.failed
        return self.succeeded / finished if finished else None


@dataclass
class Activity:
    """The last hour and day, and the series the charts draw."""

    hour: Totals
    day: Totals
    per_minute: list[tuple[int, int, int]]  # (minute start, succeeded, failed), the last 60 minutes, oldest first
    trend: list[tuple[int, int, int]]  # (bin start, failed, retried), 15-minute bins over 24 h, oldest first


def activity(now: float | None = None) -> Activity:
    """One pass over a day of rollups, summed per minute across task names."""
    now = time.time() if now is None else now
    this_minute = int(now // MINUTE) * MINUTE
    hour_from = this_minute - 59 * MINUTE
    last_bin = int(now // TREND_BIN) * TREND_BIN
    trend_from = last_bin - (DAY // TREND_BIN - 1) * TREND_BIN
    day_from = min(this_minute - (DAY // MINUTE - 1) * MINUTE, trend_from)
    query: Any = (TaskMinute.select(TaskMinute.minute, *(fn.SUM(getattr(TaskMinute, c)) for c in _SUMMED))
             .where(TaskMinute.minute >= day_from).group_by(TaskMinute.minute).tuples())
    hour, day = Totals(), Totals()
    per_minute = {m: [0, 0] for m in range(hour_from, this_minute + 1, MINUTE)}
    trend = {b: [0, 0] for b in range(trend_from, last_bin + 1, TREND_BIN)}
    for minute, *values in query:
        if minute > this_minute:
            continue  # a worker whose clock runs ahead: not "in the last hour" yet
        if minute >= this_minute - (DAY // MINUTE - 1) * MINUTE:
            day.add(values)
        received, succeeded, failed, retried, revoked = (int(v or 0) for v in values)
        if minute >= hour_from:
            hour.add(values)
            per_minute[minute] = [succeeded, failed]
        bin_start = minute - minute % TREND_BIN
        if bin_start in trend:
            trend[bin_start][0] += failed
            trend[bin_start][1] += retried
    return Activity(hour, day, [(m, *v) for m, v in per_minute.items()],  # type: ignore[misc]
                    [(b, *v) for b, v in trend.items()])  # type: ignore[misc]


@dataclass
class NameStats:
    """One task name over the window: outcomes and runtime percentiles of its successes (estimated)."""

    name: str
    succeeded: int
    failed: int
    retried: int
    p50: float | None
    p95: float | None

    @property
    def failure_rate(self) -> float | None:
        finished = self.succeeded + self.failed
        return self.failed / finished if finished else None


def top_failing_names(since: float, limit: int = 10) -> list[NameStats]:
    """Task names with the most failures since `since` (from rollups), most failures first.

    Two passes: the top names by one sum, then the other sums (and 17 histogram buckets) for those names
    only — summing every column for every name over a day of rollups costs several times more.
    """
    start = int(since // MINUTE) * MINUTE
    failed = fn.SUM(TaskMinute.failed)
    top: Any = (TaskMinute.select(TaskMinute.name, failed).where(TaskMinute.minute >= start)
                .group_by(TaskMinute.name).having(failed > 0)
                .order_by(failed.desc(), TaskMinute.name).limit(limit).tuples())
    order = [name for name, _ in top]
    if not order:
        return []
    query: Any = (TaskMinute.select(TaskMinute.name, fn.SUM(TaskMinute.succeeded), failed,
                                    fn.SUM(TaskMinute.retried),
                                    *(fn.SUM(getattr(TaskMinute, c)) for c in BUCKET_COLUMNS))
                  .where((TaskMinute.minute >= start) & TaskMinute.name.in_(order))
                  .group_by(TaskMinute.name).tuples())
    stats = {}
    for name, succeeded, failures, retried, *buckets in query:
        counts = [int(b or 0) for b in buckets]
        stats[name] = NameStats(name, int(succeeded or 0), int(failures or 0), int(retried or 0),
                                percentile(counts, 0.5), percentile(counts, 0.95))
    return [stats[name] for name in order if name in stats]


@dataclass
class ExceptionGroup:
    """Failures sharing an exception class: how many, and the latest one as an example."""

    exception_class: str
    count: int
    latest_at: float
    latest_uuid: str
    latest_name: str | None
    latest_text: str
    names: set[str] = field(default_factory=set)


@dataclass
class ExceptionSummary:
    groups: list[ExceptionGroup]
    read: int  # failures read
    capped: bool  # True: there were more failures in the window than were read


def top_exceptions(since: float, limit: int = 8, max_read: int = MAX_FAILURES_READ) -> ExceptionSummary:
    """The most common exception classes among the newest `max_read` failures since `since`.

    Reads the `task_failed_at` partial index newest first and groups in Python: bounded whatever the failure
    count, at the price of answering for the last `max_read` failures only (the page says so).
    """
    # No condition on state in SQL: with one, a planner may pick the state index and sort every failure.
    query: Any = (Task.select(Task.uuid, Task.name, Task.exception, Task.failed_at, Task.state)
             .where(Task.failed_at.is_null(False) & (Task.failed_at >= since))
             .order_by(Task.failed_at.desc()).limit(max_read + 1).tuples())
    rows = list(query)
    capped = len(rows) > max_read
    groups: dict[str, ExceptionGroup] = {}
    for uuid, name, exception, failed_at, state in rows[:max_read]:
        if state != "FAILURE":
            continue  # a failure a later success overtook (a duplicate execution): not failing now
        text = (exception or "").strip()
        match = _EXCEPTION_CLASS.match(text)
        key = match.group(1) if match else "(no exception text)"
        group = groups.get(key)
        if group is None:  # rows come newest first: the first of a class is its latest
            group = groups[key] = ExceptionGroup(key, 0, failed_at, uuid, name, text)
        group.count += 1
        if name:
            group.names.add(name)
    ranked = sorted(groups.values(), key=lambda g: (-g.count, -g.latest_at))
    return ExceptionSummary(ranked[:limit], min(len(rows), max_read), capped)


@dataclass
class FeedEvent:
    type: str
    received: float
    timestamp: float | None
    hostname: str | None
    source: str | None
    uuid: str
    name: str | None
    state: str | None


def recent_events(limit: int = 15) -> list[FeedEvent]:
    """The newest task events by arrival (index `task_event_received`), with their task's id and name."""
    query: Any = (TaskEvent.select(TaskEvent.type, TaskEvent.received, TaskEvent.timestamp, TaskEvent.hostname,
                              TaskEvent.source, Task.uuid, Task.name, Task.state)
             .join(Task, on=(Task.id == TaskEvent.task_id))
             .order_by(TaskEvent.received.desc()).limit(limit).tuples())
    return [FeedEvent(*row) for row in query]


def worker_counts() -> tuple[int, int]:
    """(online, offline) workers; forgotten ones are not counted (as on the workers page)."""
    from webui.store.worker_queries import visible

    online = offline = 0
    query: Any = (Worker.select(Worker.online, fn.COUNT(Worker.hostname)).where(visible())
                  .group_by(Worker.online).tuples())
    for is_online, count in query:
        if is_online:
            online += count
        else:
            offline += count
    return online, offline


@dataclass
class GapSummary:
    open: list[CollectorGap]
    recent: int  # gaps that overlap the last 24 h, open ones included


def gap_summary(now: float | None = None) -> GapSummary:
    now = time.time() if now is None else now
    open_gaps = list(CollectorGap.select().where(CollectorGap.ended_at.is_null()).order_by(CollectorGap.started_at))
    recent = (CollectorGap.select()
              .where(CollectorGap.ended_at.is_null() | (CollectorGap.ended_at >= now - DAY)).count())
    return GapSummary(open_gaps, recent)
