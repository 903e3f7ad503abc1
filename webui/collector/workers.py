"""Worker liveness from heartbeats: online, offline, and why.

A worker is online from any `worker-online`/`worker-heartbeat` (or a task event from it) and offline after a
`worker-offline` or when `worker_offline_heartbeats` of its heartbeat intervals pass with no event at all from
it, measured on the collector's clock (`local_received`), so a skewed worker clock cannot flap it. Celery's own
`State` uses 2 intervals (4 s), which flaps on a GC or IO pause; we default to 3. `worker-offline` is not proof
of death (a worker reconnecting to the broker sends offline then online a second later), so every transition
is recorded with its reason and time, not only the current status.

Heartbeats caused by the `heartbeat` control command carry `freq=5` and no `active`/`processed`; they count as
signs of life but do not change the worker's regular interval (celery-facts §1.5).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DEFAULT_FREQ = 2.0
REASON_OFFLINE_EVENT = "worker-offline"
REASON_TIMEOUT = "heartbeat timeout"
REASON_ONLINE = "worker-online"
REASON_HEARTBEAT = "heartbeat"
REASON_TASK_EVENT = "task event"

_SOFTWARE = ("sw_ident", "sw_ver", "sw_sys")


@dataclass(slots=True)
class WorkerState:
    hostname: str
    first_seen: float
    last_seen: float
    id: int | None = None
    pid: int | None = None
    sw_ident: str | None = None
    sw_ver: str | None = None
    sw_sys: str | None = None
    freq: float | None = None
    loadavg: str | None = None
    processed: int | None = None
    active: int | None = None
    online: bool = False
    status_changed_at: float | None = None
    offline_reason: str | None = None
    last_heartbeat: float | None = None
    heartbeat_timestamp: float | None = None
    utcoffset: float | None = None
    last_task_event_at: float | None = None
    # Not stored: for the "task events are off" warning.
    processed_baseline: tuple[float, int] | None = field(default=None, compare=False)


@dataclass(slots=True)
class Transition:
    hostname: str
    online: bool
    at: float
    reason: str


def apply_worker_event(worker: WorkerState, event: dict[str, Any]) -> Transition | None:
    """Update `worker` from a worker-* event; return the online/offline transition it caused, if any."""
    received = event["local_received"]
    etype = event["type"]
    worker.last_seen = max(worker.last_seen, received)
    for key in _SOFTWARE:
        if event.get(key):
            setattr(worker, key, event[key])
    if isinstance(event.get("pid"), int):
        worker.pid = event["pid"]
    if event.get("utcoffset") is not None:
        worker.utcoffset = event["utcoffset"]
    if etype == "worker-offline":
        return _set_online(worker, False, received, REASON_OFFLINE_EVENT)
    regular = "active" in event  # the control command's heartbeat has no active/processed/loadavg
    if regular or worker.freq is None:
        freq = event.get("freq")
        if isinstance(freq, float) and freq > 0:
            worker.freq = freq
    if regular:
        worker.active = event.get("active")
        worker.processed = event.get("processed")
        if event.get("loadavg") is not None:
            worker.loadavg = json.dumps(event["loadavg"])
    worker.last_heartbeat = received
    worker.heartbeat_timestamp = event.get("timestamp")
    reason = REASON_ONLINE if etype == "worker-online" else REASON_HEARTBEAT
    return _set_online(worker, True, received, reason)


def touch_from_task_event(worker: WorkerState, received: float) -> Transition | None:
    """A task event proves the worker is alive (as in Celery's State) — unless it was received before the
    worker went offline: a batch merges worker events first, so a task event that came before a
    `worker-offline` of the same batch must not bring the worker back."""
    worker.last_seen = max(worker.last_seen, received)
    worker.last_task_event_at = received
    worker.processed_baseline = None
    if not worker.online and worker.status_changed_at is not None and received <= worker.status_changed_at:
        return None
    return _set_online(worker, True, received, REASON_TASK_EVENT)


def offline_deadline(worker: WorkerState, missed_heartbeats: float) -> float:
    return worker.last_seen + (worker.freq or DEFAULT_FREQ) * missed_heartbeats


def sweep(workers: list[WorkerState], now: float, missed_heartbeats: float) -> list[Transition]:
    """Mark offline every online worker silent for longer than its allowed window."""
    changes = []
    for worker in workers:
        if worker.online and now > offline_deadline(worker, missed_heartbeats):
            transition = _set_online(worker, False, now, REASON_TIMEOUT)
            if transition:
                changes.append(transition)
    return changes


def silent_task_event_workers(workers: list[WorkerState], now: float, window: float) -> list[tuple[str, int]]:
    """Workers online for `window` s that processed tasks but sent no task event meanwhile: events are off.

    Returns (hostname, tasks processed without events). An idle cluster sends no task events either, so the
    warning rests on the `processed` counter of regular heartbeats, which grows only when tasks run.
    """
    silent = []
    for worker in workers:
        if not worker.online or worker.processed is None:
            continue
        baseline = worker.processed_baseline
        if baseline is None or worker.processed < baseline[1]:  # restarted worker: counter reset
            worker.processed_baseline = (now, worker.processed)
            continue
        since, processed = baseline
        unseen = worker.processed - processed
        recent_task_event = worker.last_task_event_at is not None and worker.last_task_event_at >= since
        if unseen > 0 and now - since >= window and not recent_task_event:
            silent.append((worker.hostname, unseen))
    return silent


def _set_online(worker: WorkerState, online: bool, at: float, reason: str) -> Transition | None:
    if worker.online == online and worker.status_changed_at is not None:
        return None
    worker.online = online
    worker.status_changed_at = at
    worker.offline_reason = None if online else reason
    return Transition(worker.hostname, online, at, reason)
