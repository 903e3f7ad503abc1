"""Worker detectors: a worker that went offline, and one that is alive but has stopped getting anywhere.

Both read the `worker` rows the collector keeps (online state, heartbeats, the last task event) and, for the
wedged worker, its last `inspect` replies and the samples of the queues it consumes. Forgotten workers (hidden
on the workers page until they send an event again) are never reported.
"""
from __future__ import annotations

import json
from typing import Any

from webui.collector.workers import REASON_OFFLINE_EVENT, REASON_TIMEOUT
from webui.detect.findings import DetectContext, Finding
from webui.detect.phrasing import duration, path, since
from webui.detect.queues import recent_points
from webui.detect.registry import Detector, Param, register
from webui.store.models import Worker, WorkerInspection
from webui.store.worker_queries import visible

DEFAULT_FREQ = 2.0
FRESH_HEARTBEATS = 5  # missed heartbeat intervals (at least a minute) before "heartbeating" is doubtful
_REASONS = {REASON_TIMEOUT: "its heartbeats stopped", REASON_OFFLINE_EVENT: "it shut down (worker-offline)"}


def worker_offline(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """Workers offline for at least the grace, that went offline within the window; back online: not found."""
    grace, within = float(params["grace_minutes"]) * 60.0, float(params["within_hours"]) * 3600.0
    query = Worker.select().where((Worker.online == False) & visible())  # noqa: E712 - SQL, not Python
    if within > 0:
        query = query.where(Worker.status_changed_at.is_null() | (Worker.status_changed_at >= ctx.now - within))
    findings = []
    for worker in query.order_by(Worker.hostname):
        went = worker.status_changed_at if worker.status_changed_at is not None else worker.last_seen
        if ctx.now - went < grace or (worker.offline_reason == REASON_OFFLINE_EVENT and not params["shutdowns"]):
            continue
        reason = _REASONS.get(worker.offline_reason or "", worker.offline_reason or "reason unknown")
        running = f"; it was running {worker.active} tasks" if worker.active else ""
        findings.append(Finding(
            "worker_offline", worker.hostname, worker.hostname,
            f"Worker {worker.hostname} offline {since(went, ctx.now)}: {reason}{running}",
            {"reason": worker.offline_reason, "offline_at": went, "last_seen": worker.last_seen,
             "last_heartbeat": worker.last_heartbeat, "active": worker.active},
            path("/worker/", worker.hostname), ctx.now - went, went))
    return findings


def inspection_facts(data: str | None) -> tuple[list[str], list[str]]:
    """(queues it consumes, ids of the tasks it said it is running) from a worker's stored inspect replies."""
    try:
        replies = json.loads(data) if data else {}
    except ValueError:
        return [], []
    if not isinstance(replies, dict):
        return [], []
    queues = replies.get("active_queues")
    active = replies.get("active")
    names = [q["name"] for q in queues if isinstance(q, dict) and isinstance(q.get("name"), str)] \
        if isinstance(queues, list) else []
    ids = [t["id"] for t in active if isinstance(t, dict) and isinstance(t.get("id"), str)] \
        if isinstance(active, list) else []
    return names, ids


def wedged_worker(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """Heartbeating, holding active tasks, no task event for T minutes, and a queue it consumes not draining."""
    quiet = float(params["minutes"]) * 60.0
    workers = (Worker.select().where((Worker.online == True) & visible()  # noqa: E712 - SQL, not Python
                                     & Worker.last_task_event_at.is_null(False)
                                     & (Worker.last_task_event_at <= ctx.now - quiet))
               .order_by(Worker.hostname))
    findings = []
    for worker in workers:
        last_event = float(worker.last_task_event_at or 0.0)  # not null: the query says so
        fresh = max(60.0, FRESH_HEARTBEATS * (worker.freq or DEFAULT_FREQ))
        if worker.last_heartbeat is None or ctx.now - worker.last_heartbeat > fresh:
            continue
        inspection = WorkerInspection.get_or_none(WorkerInspection.hostname == worker.hostname)
        queues, ids = inspection_facts(inspection.data if inspection else None)
        if inspection is None or inspection.at < last_event:
            ids = []  # replies from before its last task event say nothing about the tasks it holds now
        active = max(worker.active or 0, len(ids))
        if not active or not queues:
            continue
        stuck = {}
        for name, points in recent_points(ctx.db, ctx.now, quiet, queues).items():
            depths = [p.depth for p in points if p.depth is not None]
            if len(depths) >= 2 and depths[-1] >= int(params["min_depth"]) and depths[-1] >= depths[0]:
                stuck[name] = {"first": depths[0], "last": depths[-1]}
        if not stuck:
            continue
        silent = ctx.now - last_event
        listed = ", ".join(f"{q} ({v['first']} → {v['last']})" for q, v in sorted(stuck.items())[:3])
        findings.append(Finding(
            "wedged_worker", worker.hostname, worker.hostname,
            f"Worker {worker.hostname} looks wedged: {active} active tasks, no task event for {duration(silent)}, "
            f"while its queue is not draining: {listed}",
            {"active": active, "active_ids": ids[:20], "queues": stuck,
             "last_task_event_at": last_event, "last_heartbeat": worker.last_heartbeat},
            path("/worker/", worker.hostname), silent, last_event))
    return findings


register(Detector(
    "worker_offline", "Worker offline", "worker", worker_offline,
    {"grace_minutes": Param(1.0, "Minutes offline before it counts (a restart comes back sooner).", min=0),
     "within_hours": Param(24.0, "Only workers that went offline in the last this many hours (0: however long "
                           "ago); after that it counts as retired. Forget it on the workers page to stop sooner.",
                           min=0),
     "shutdowns": Param(False, "Also report clean shutdowns (worker-offline), not only stopped heartbeats.")},
    "A worker stopped heartbeating (crashed, killed, host or network lost). Tasks it was running may be lost: "
    "see the lost-task findings and the worker's page."))
register(Detector(
    "wedged_worker", "Wedged worker", "worker", wedged_worker,
    {"minutes": Param(15.0, "Minutes without a task event from the worker.", min=1, max=1440),
     "min_depth": Param(1, "Messages waiting in a queue it consumes.", min=1)},
    "The worker heartbeats and says it runs tasks, but sent no task event for T minutes while a queue it "
    "consumes is not draining: its pool is stuck (a deadlock, a hung call without a timeout, a full pool of "
    "long tasks). Look at its active tasks and their stack, then restart it."))
