"""Stalled tasks: STARTED for much longer than their own task name usually runs, on a worker still online.

The threshold of each task name is `multiplier` × the p95 of its successful runtimes over `history_days`, read
from the per-minute runtime histograms (webui.collector.rollups), never below `floor_seconds`. Until a name has
`min_history` runs in that window its p95 is not trusted and the floor alone is the threshold; a rule may also
set a fixed `threshold_seconds`. A task on an offline worker is not stalled but lost (webui.detect.lost_marker).

A task that promised progress every N seconds (webui.agent.expect_progress, migration 0018) is held to its own
promise instead, in both directions: stalled once no report came for more than N s plus `promise_grace_seconds`
(webui.progress_promise), however young it is, and never stalled while it keeps the promise, however long it runs.

Cost: only STARTED rows are read, through the `(state, id)` index, and only those started before the lowest
threshold; the histograms are read only for the names of those few tasks. The tasks with a promise are the
STARTED rows whose `progress_every` is set, read through the same index.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webui import fastjson, progress_promise
from webui.collector import rollups
from webui.detect import phrasing
from webui.detect.findings import DetectContext, Finding
from webui.detect.registry import Detector, Param, register

MAX_FINDINGS = 500
MAX_CANDIDATES = 5000  # STARTED tasks past the floor looked at per pass (each needs its name's threshold)
DAY = 86_400.0


def run(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    findings = _broken_promises(ctx, float(params["promise_grace_seconds"]))
    findings += _past_threshold(ctx, params)
    findings.sort(key=lambda f: f.since or 0.0)
    return findings[:MAX_FINDINGS]


def _past_threshold(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """The tasks without a promise: running longer than their name's threshold."""
    fixed = float(params["threshold_seconds"] or 0)
    floor = float(params["floor_seconds"])
    lowest = fixed if fixed > 0 else floor
    candidates = _started_before(ctx, ctx.now - lowest)
    if not candidates:
        return []
    history = {} if fixed > 0 else _runtime_history(ctx, {c[1] or "" for c in candidates},
                                                    ctx.now - float(params["history_days"]) * DAY)
    findings = []
    for uuid, name, worker, started_at in candidates:
        limit = threshold(history.get(name or ""), params)
        running = ctx.now - started_at
        if running <= limit.seconds:
            continue
        label = name or "a task of unknown name"
        findings.append(Finding(
            detector="task_stalled", subject=uuid, scope=name or "",
            summary=(f"{label} has been running {phrasing.duration(running)} on {worker or 'an unknown worker'} "
                     f"(threshold {phrasing.duration(limit.seconds)}: {limit.basis})"),
            detail={"uuid": uuid, "name": name, "worker": worker, "started_at": started_at,
                    "running_seconds": round(running, 3), "threshold_seconds": limit.seconds,
                    "basis": limit.kind, "p95_seconds": limit.p95, "history_runs": limit.runs},
            link=f"/task/{uuid}", value=round(running, 3), since=started_at))
        if len(findings) >= MAX_FINDINGS:
            break
    return findings


def _started_before(ctx: DetectContext, before: float) -> list[tuple[str, str | None, str | None, float]]:
    """STARTED tasks without a promise started before `before`, oldest first, unless their worker is known to
    be offline."""
    db = ctx.db
    p = db.param
    return list(db.execute_sql(
        "SELECT t.uuid, t.name, t.worker, t.started_at FROM task t LEFT JOIN worker w ON w.hostname = t.worker "
        f"WHERE t.state = {p} AND t.started_at < {p} AND t.progress_every IS NULL "
        f"AND (w.id IS NULL OR w.online = {p}) ORDER BY t.id LIMIT {p}",
        ("STARTED", before, True, MAX_CANDIDATES)).fetchall())


def _broken_promises(ctx: DetectContext, grace: float) -> list[Finding]:
    """STARTED tasks with a promise, on a worker not known to be offline, that broke it."""
    db = ctx.db
    p = db.param
    rows = db.execute_sql(
        "SELECT t.uuid, t.name, t.worker, t.started_at, t.attempt, t.progress_every, t.detail FROM task t "
        f"LEFT JOIN worker w ON w.hostname = t.worker WHERE t.state = {p} AND t.progress_every IS NOT NULL "
        f"AND (w.id IS NULL OR w.online = {p}) ORDER BY t.id LIMIT {p}", ("STARTED", True, MAX_CANDIDATES))
    findings = []
    for uuid, name, worker, started_at, attempt, every, detail in rows.fetchall():
        promise = progress_promise.of_task(every, started_at, attempt, fastjson.loads_as(detail, dict))
        if promise is None or not promise.broken(ctx.now, grace):
            continue
        silent = promise.silent(ctx.now)
        findings.append(Finding(
            detector="task_stalled", subject=uuid, scope=name or "",
            summary=(f"{name or 'a task of unknown name'} on {worker or 'an unknown worker'} "
                     f"{promise.text(ctx.now, grace)}"),
            detail={"uuid": uuid, "name": name, "worker": worker, "started_at": started_at, "basis": "promise",
                    "promise_seconds": promise.every, "silent_seconds": round(silent, 3),
                    "last_progress_at": promise.last_report_at, "grace_seconds": grace,
                    "running_seconds": None if started_at is None else round(ctx.now - started_at, 3)},
            link=f"/task/{uuid}", value=round(silent, 3), since=promise.broken_at(grace)))
    return findings


@dataclass(frozen=True)
class RuntimeHistory:
    runs: int  # successful runs with a runtime in the window
    p95: float | None


def _runtime_history(ctx: DetectContext, names: set[str], since: float) -> dict[str, RuntimeHistory]:
    db = ctx.db
    p = db.param
    names_list = sorted(names)
    sums = ", ".join(f"SUM({c})" for c in rollups.BUCKET_COLUMNS)
    rows = db.execute_sql(
        f"SELECT name, SUM(runtime_sum), {sums} FROM task_minute WHERE minute >= {p} "
        f"AND name IN ({', '.join([p] * len(names_list))}) GROUP BY name",
        (int(since), *names_list)).fetchall()
    history = {}
    for name, runtime_sum, *buckets in rows:
        counts = [float(v or 0) for v in buckets]
        history[name] = RuntimeHistory(int(sum(counts)), p95_runtime(counts, float(runtime_sum or 0)))
    return history


def p95_runtime(buckets: list[float], runtime_sum: float) -> float | None:
    """The p95 of a runtime histogram. The open top bucket (over 300 s) only says "at least 300 s": when the p95
    falls in it, the mean of that bucket's runs (the runtime sum less the other buckets at their midpoints)."""
    p95 = rollups.percentile(buckets, 0.95)
    top = buckets[-1] if buckets else 0
    bounds = rollups.RUNTIME_BOUNDS
    if p95 is None or not top or p95 < bounds[-1]:
        return p95
    lowers = (0.0, *bounds[:-1])
    closed = sum(count * (low + high) / 2 for count, low, high in zip(buckets[:-1], lowers, bounds, strict=True))
    return max(bounds[-1], (runtime_sum - closed) / top)


def seconds_text(seconds: float) -> str:
    """A runtime as a summary says it: "2.4 ms", "420 ms", "3.5 s", then phrasing's "12 min", "2 h"."""
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:.2g} ms" if ms < 10 else f"{ms:.0f} ms"
    return f"{seconds:.2g} s" if seconds < 10 else phrasing.duration(seconds)


@dataclass(frozen=True)
class Threshold:
    seconds: float
    kind: str  # fixed, floor, p95
    basis: str  # how it was chosen, for the summary
    p95: float | None = None
    runs: int = 0


def threshold(history: RuntimeHistory | None, params: dict[str, Any]) -> Threshold:
    """The threshold of one task name from its runtime history and the rule's parameters."""
    fixed = float(params["threshold_seconds"] or 0)
    if fixed > 0:
        return Threshold(fixed, "fixed", "a fixed threshold")
    floor = float(params["floor_seconds"])
    multiplier = float(params["multiplier"])
    runs = history.runs if history else 0
    p95 = history.p95 if history else None
    if p95 is None or runs < int(params["min_history"]):
        return Threshold(floor, "floor", f"the floor; {runs} successful runs in {params['history_days']} days, "
                      f"fewer than the {params['min_history']} needed to trust a p95", p95, runs)
    times = f"{multiplier:g}× its p95 of {seconds_text(p95)}"
    if multiplier * p95 < floor:
        return Threshold(floor, "floor", f"the floor, above {times}", p95, runs)
    return Threshold(multiplier * p95, "p95", times, p95, runs)


register(Detector(
    name="task_stalled", title="Stalled task", scope_kind="task", run=run,
    params={
        "multiplier": Param(10, "Flag a task running longer than this many times the p95 runtime of its name.",
                            min=1, max=1000),
        "floor_seconds": Param(300, "Never flag a task that has run less than this many seconds.", min=0),
        "min_history": Param(20, "Successful runs in the history window before the p95 is trusted; with fewer, "
                                 "the floor alone is the threshold.", min=1),
        "history_days": Param(7, "Days of runtime history the p95 is computed from.", min=1, max=90),
        "threshold_seconds": Param(0, "A fixed threshold in seconds instead of the history (0: use the history).",
                                   min=0),
        "promise_grace_seconds": Param(progress_promise.GRACE_SECONDS,
                                       "Seconds past a task's own promised progress interval (expect_progress) "
                                       "before it is stalled.", min=0),
    },
    description="A task STARTED for longer than max(floor, multiplier × p95 runtime of its task name), on a "
                "worker that is still online; a task that promised progress every N s (expect_progress) is "
                "stalled instead once none came for N s plus the grace. At most 500 findings, oldest first."))
