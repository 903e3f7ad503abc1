"""Rate and regression detectors per task name, from the per-minute rollups (`task_minute`).

Each compares a recent window with a threshold or with the same task's baseline (a longer window just before
it). The window query is small (minutes × task names); the baseline is read only for the names the window
already flags. `new_exception` reads failed tasks through the `task_failed_at` index, bounded by counts.

A window is the minutes whose start falls within its last `minutes` (the current, partial minute included);
rollups count events, not tasks (webui.collector.rollups), and the unknown name "" is never reported.

A day of baseline is the costly read (a day of rows for every name: about half a second for 100 names on
SQLite), so its ends move in `BASELINE_STEP` steps and each process keeps the last one read: one read serves
20 evaluations, and a baseline a few minutes short of its end says the same.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from peewee import Case, Database, fn

from webui.collector.rollups import BUCKET_COLUMNS, percentile
from webui.detect.findings import DetectContext, Finding
from webui.detect.phrasing import duration, path, since
from webui.detect.registry import Detector, Param, register
from webui.store.metrics_queries import exception_class
from webui.store.models import Task, TaskMinute

MINUTE = 60
MAX_NAMES = 200  # task names reported on in one evaluation
BASELINE_STEP = 300  # seconds: the baseline's ends move in these steps (see the module docstring)
MAX_PAIRS = 50  # (task name, exception class) pairs new_exception checks in one evaluation
EXCEPTION_PREFIX = 200  # characters of an exception's text read (the class is at its start)


def minute_of(at: float) -> int:
    """The first rollup minute that starts at or after `at`: where a window beginning at `at` starts."""
    return int(-(-at // MINUTE)) * MINUTE


def tasks_link(name: str, state: str | None = None) -> str:
    query = [("name", name)] + ([("state", state)] if state else [])
    return f"/tasks?{urlencode(query)}"


def window_sums(columns: Sequence[str], start: int, end: float, having: Any = None) -> dict[str, list[int]]:
    """{task name: [sum of each column]} over the rollup minutes start <= minute <= end."""
    sums = [fn.SUM(getattr(TaskMinute, c)) for c in columns]
    query: Any = (TaskMinute.select(TaskMinute.name, *sums)
                  .where((TaskMinute.minute >= start) & (TaskMinute.minute <= end) & (TaskMinute.name != "")))
    query = query.group_by(TaskMinute.name)
    if having is not None:
        query = query.having(having)
    return {name: [int(v or 0) for v in values] for name, *values in query.tuples()}


_baselines: dict[tuple[str, tuple[str, ...]], tuple[tuple[int, int], dict[str, list[int]]]] = {}


def baseline_sums(db: Database, columns: tuple[str, ...], since: float, until: float) -> dict[str, list[int]]:
    """`window_sums` of every name over [since, until) with both ends rounded down to `BASELINE_STEP`."""
    bounds = (int(since - since % BASELINE_STEP), int(until - until % BASELINE_STEP))
    key = (f"{type(db).__name__}:{db.database}", columns)
    cached = _baselines.get(key)
    if cached is None or cached[0] != bounds:
        cached = _baselines[key] = (bounds, window_sums(columns, bounds[0], bounds[1] - 1))
    return cached[1]


# -- failure rate -----------------------------------------------------------------------------------------

def failure_rate(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """failed / (succeeded + failed) above X% over the window, with at least `min_count` finished."""
    minutes, limit, min_count = float(params["minutes"]), float(params["percent"]), int(params["min_count"])
    start = minute_of(ctx.now - minutes * MINUTE)
    first_failure = fn.MIN(Case(None, ((TaskMinute.failed > 0, TaskMinute.minute),), None))
    query: Any = (TaskMinute.select(TaskMinute.name, fn.SUM(TaskMinute.succeeded), fn.SUM(TaskMinute.failed),
                                    first_failure)
                  .where((TaskMinute.minute >= start) & (TaskMinute.minute <= ctx.now) & (TaskMinute.name != ""))
                  .group_by(TaskMinute.name)
                  .having(fn.SUM(TaskMinute.succeeded) + fn.SUM(TaskMinute.failed) >= max(1, min_count)).tuples())
    findings = []
    for name, succeeded, failed, first in query:
        finished = int(succeeded or 0) + int(failed or 0)
        rate = 100.0 * int(failed or 0) / finished
        if rate <= limit:
            continue
        findings.append(Finding(
            "failure_rate", name, name,
            f"{name}: {rate:.0f}% of {finished} finished tasks failed in the last {duration(minutes * MINUTE)} "
            f"(above {limit:g}%)",
            {"failed": int(failed or 0), "succeeded": int(succeeded or 0), "percent": round(rate, 1),
             "minutes": minutes},
            tasks_link(name, "FAILURE"), round(rate, 1), float(first) if first is not None else None))
    return findings


# -- retries against the baseline -------------------------------------------------------------------------

def retry_rate(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """Retries per finished task over the window above `factor` × the same over the baseline before it."""
    minutes, factor = float(params["minutes"]), float(params["factor"])
    start = minute_of(ctx.now - minutes * MINUTE)
    base_start = minute_of(ctx.now - float(params["baseline_hours"]) * 3600.0)
    columns = ("retried", "succeeded", "failed")
    recent = window_sums(columns, start, ctx.now, having=fn.SUM(TaskMinute.retried) >= int(params["min_retries"]))
    if not recent:
        return []
    names = sorted(recent, key=lambda n: -recent[n][0])[:MAX_NAMES]
    baseline = baseline_sums(ctx.db, columns, base_start, start)
    findings = []
    for name in names:
        retried, succeeded, failed = recent[name]
        b_retried, b_succeeded, b_failed = baseline.get(name, [0, 0, 0])
        if b_succeeded + b_failed < int(params["min_baseline"]):
            continue  # too little history to call anything unusual
        rate = retried / max(1, succeeded + failed)
        usual = b_retried / (b_succeeded + b_failed)
        if rate <= factor * usual:
            continue
        findings.append(Finding(
            "retry_rate", name, name,
            f"{name}: {rate:.2f} retries per finished task in the last {duration(minutes * MINUTE)} "
            f"({retried} retries), usually {usual:.2f} (the {params['baseline_hours']:g} h before)",
            {"retried": retried, "finished": succeeded + failed, "rate": round(rate, 4),
             "baseline_rate": round(usual, 4), "factor": factor},
            tasks_link(name), round(rate, 4)))
    return findings


# -- runtime percentiles against the baseline -------------------------------------------------------------

@dataclass(frozen=True)
class Runtime:
    count: int
    value: float | None


RUNTIME_COLUMNS = ("runtime_count", *BUCKET_COLUMNS)


def runtimes(sums: dict[str, list[int]], q: float, min_count: int) -> dict[str, Runtime]:
    """Each name's successful runs (from `RUNTIME_COLUMNS` sums): how many, and the histogram's q-quantile."""
    return {name: Runtime(values[0], percentile(values[1:], q)) for name, values in sums.items()
            if values[0] >= max(1, min_count)}


def runtime_regression(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """The window's p95 (or p99) runtime above `factor` × the same percentile over the baseline."""
    minutes, factor, pct = float(params["minutes"]), float(params["factor"]), float(params["percentile"])
    q = pct / 100.0
    start = minute_of(ctx.now - minutes * MINUTE)
    base_start = minute_of(ctx.now - float(params["baseline_hours"]) * 3600.0)
    min_count = max(1, int(params["min_count"]))
    window = window_sums(RUNTIME_COLUMNS, start, ctx.now, having=fn.SUM(TaskMinute.runtime_count) >= min_count)
    recent = {n: r for n, r in runtimes(window, q, min_count).items()
              if r.value is not None and r.value >= float(params["min_seconds"])}
    if not recent:
        return []
    names = sorted(recent, key=lambda n: -(recent[n].value or 0.0))[:MAX_NAMES]
    baseline = runtimes(baseline_sums(ctx.db, RUNTIME_COLUMNS, base_start, start), q, int(params["min_baseline"]))
    findings = []
    label = f"p{pct:g}"
    for name in names:
        now_value, usual = recent[name].value or 0.0, baseline.get(name)
        if usual is None or not usual.value or now_value <= factor * usual.value:
            continue
        findings.append(Finding(
            "runtime_regression", name, name,
            f"{name}: {label} runtime {now_value:.3g} s over the last {duration(minutes * MINUTE)}, "
            f"{now_value / usual.value:.1f}× its usual {usual.value:.3g} s (the {params['baseline_hours']:g} h "
            "before)",
            {"percentile": pct, "seconds": round(now_value, 4), "baseline_seconds": round(usual.value, 4),
             "count": recent[name].count, "baseline_count": usual.count, "factor": factor},
            tasks_link(name, "SUCCESS"), round(now_value, 4)))
    return findings


# -- an exception class never seen before for the task ----------------------------------------------------

@dataclass
class NewFailures:
    name: str
    exception_class: str
    count: int
    first_at: float
    latest_uuid: str
    example: str


def window_failures(start: float, now: float, max_read: int) -> dict[tuple[str, str], NewFailures]:
    """The window's failures by (task name, exception class), from the newest `max_read` of them."""
    query: Any = (Task.select(Task.uuid, Task.name, fn.SUBSTR(Task.exception, 1, EXCEPTION_PREFIX), Task.failed_at)
                  .where(Task.failed_at.is_null(False) & (Task.failed_at >= start) & (Task.failed_at <= now))
                  .order_by(Task.failed_at.desc()).limit(max_read).tuples())
    groups: dict[tuple[str, str], NewFailures] = {}
    for uuid, name, text, failed_at in query:
        if not name:
            continue
        key = (name, exception_class(text))
        group = groups.get(key)
        if group is None:  # newest first: the first row of a pair is its latest failure
            group = groups[key] = NewFailures(name, key[1], 0, failed_at, uuid, (text or "").strip())
        group.count += 1
        group.first_at = failed_at
    return groups


def known_before(name: str, start: float) -> bool:
    """The monitor stored tasks of this name from before `start`: it has a history to compare with."""
    first = (Task.select(Task.sent_at, Task.received_at, Task.started_at, Task.updated_at)
             .where(Task.name == name).order_by(Task.id).limit(1).tuples().first())
    return first is not None and min(t for t in first if t is not None) < start


def recent_classes(start: float, limit: int) -> set[tuple[str, str]]:
    """(task name, exception class) of the newest `limit` failures before `start`: one read of the index."""
    query: Any = (Task.select(Task.name, fn.SUBSTR(Task.exception, 1, EXCEPTION_PREFIX))
                  .where(Task.failed_at.is_null(False) & (Task.failed_at < start))
                  .order_by(Task.failed_at.desc()).limit(limit).tuples())
    return {(name, exception_class(text)) for name, text in query if name}


def seen_before(db: Database, name: str, cls: str, start: float, scan: int) -> bool:
    """A failure of `name` with class `cls` before `start`, among the name's newest `scan` tasks.

    The inner LIMIT keeps every planner on the (name, id) index, newest first, and stops it after `scan` rows
    (an index on failed_at would otherwise be combined with it); the outer LIMIT stops at the first match.
    """
    p = db.param
    rows = db.execute_sql(
        f"SELECT e FROM (SELECT SUBSTR(exception, 1, {p}) AS e, failed_at FROM task WHERE name = {p} "
        f"ORDER BY id DESC LIMIT {p}) newest "
        f"WHERE failed_at IS NOT NULL AND failed_at < {p} AND SUBSTR(e, 1, {p}) = {p} LIMIT 20",
        (EXCEPTION_PREFIX, name, scan, start, len(cls), cls)).fetchall()
    return any(exception_class(text) == cls for text, in rows)


def new_exception(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """A failure in the window whose exception class this task name never failed with before it."""
    minutes = float(params["minutes"])
    start = ctx.now - minutes * MINUTE
    groups = window_failures(start, ctx.now, int(params["max_read"]))
    if not groups:
        return []
    recent = recent_classes(start, int(params["recent"]))  # most known classes are among these
    findings = []
    history: dict[str, bool] = {}
    for (name, cls), group in sorted(groups.items(), key=lambda kv: kv[1].first_at)[:MAX_PAIRS]:
        if (name, cls) in recent:
            continue
        if name not in history:
            history[name] = known_before(name, start)
        if not history[name] or seen_before(ctx.db, name, cls, start, int(params["scan"])):
            continue
        findings.append(Finding(
            "new_exception", f"{name}: {cls}", name,
            f"{name} failed with {cls}, never seen for this task before: {group.count} "
            f"{'failure' if group.count == 1 else 'failures'} {since(group.first_at, ctx.now)}",
            {"exception_class": cls, "count": group.count, "latest_uuid": group.latest_uuid,
             "example": group.example},
            path("/task/", group.latest_uuid), float(group.count), group.first_at))
    return findings


register(Detector(
    "failure_rate", "Failure rate", "task", failure_rate,
    {"minutes": Param(15.0, "The window, in minutes.", min=1, max=1440),
     "percent": Param(10.0, "Failed share of finished tasks (succeeded + failed), in percent.", min=0, max=100),
     "min_count": Param(20, "Finished tasks in the window before a rate means anything.", min=1)},
    "More than X% of a task's finished runs failed over the window. Retries are not failures."))
register(Detector(
    "retry_rate", "Retries above baseline", "task", retry_rate,
    {"minutes": Param(15.0, "The window, in minutes.", min=1, max=1440),
     "baseline_hours": Param(24.0, "The baseline: this many hours before the window.", min=1, max=168),
     "factor": Param(3.0, "Retries per finished task must exceed this many times the baseline's.", min=1),
     "min_retries": Param(10, "Retries in the window before it counts.", min=1),
     "min_baseline": Param(50, "Finished tasks in the baseline before it is trusted.", min=1)},
    "A task retries far more than usual: a dependency it retries on (an API, a lock, a database) is failing."))
register(Detector(
    "runtime_regression", "Runtime regression", "task", runtime_regression,
    {"percentile": Param(95.0, "Which percentile: 95 or 99 (any from 50 to 99.9).", min=50, max=99.9),
     "minutes": Param(15.0, "The window, in minutes.", min=1, max=1440),
     "baseline_hours": Param(24.0, "The baseline: this many hours before the window.", min=1, max=168),
     "factor": Param(2.0, "The window's percentile must exceed this many times the baseline's.", min=1),
     "min_seconds": Param(1.0, "…and be at least this many seconds (faster tasks are not worth waking for).",
                          min=0),
     "min_count": Param(20, "Successful runs in the window.", min=1),
     "min_baseline": Param(100, "Successful runs in the baseline.", min=1)},
    "A task's p95/p99 runtime (of successful runs, from the rollups' histogram: estimates within a bucket) "
    "rose well above its own baseline: a slower dependency, bigger inputs, or a contended resource."))
register(Detector(
    "new_exception", "New exception", "task", new_exception,
    {"minutes": Param(15.0, "The window, in minutes: the finding lasts while the first failure is in it.",
                      min=1, max=1440),
     "max_read": Param(500, "Newest failures read from the window.", min=1, max=10_000),
     "recent": Param(5000, "Newest failures before the window read at once (of every task) to know classes.",
                     min=0, max=100_000),
     "scan": Param(10_000, "Then, of the task's own newest tasks, how many the history check looks through.",
                   min=100, max=1_000_000)},
    "A task failed with an exception class it never failed with before (the text before \"(\" of the "
    "exception): a new bug, a new dependency failure. Task names first seen inside the window are skipped."))
