"""Repair what a gap hid: ask the workers what they are doing, and the result backend how tasks ended.

Runs after the collector (re)connects following a gap. Its findings become synthetic task events marked with
their source (`inspect`, `backend`) and go through the writer and the same merge rules as real events, so a
repair can only move a task forward, and the task's timeline shows what was repaired and how.

- `inspect active` → `task-started`, `inspect reserved`/`scheduled` → `task-received`.
- A task we last saw RECEIVED/STARTED/PENDING on a worker that answered but no longer lists it finished during
  the gap: with a result backend, its stored outcome becomes `task-succeeded`/`task-failed`/`task-revoked`.
  What neither source can settle keeps its state, never guessed, but is marked *unknown since* its last event
  (a `task-unresolved` repair, source `reconcile`): pages then say the monitor cannot tell what became of it,
  instead of showing it running or waiting forever. Its next event, of any kind, clears the mark.

It runs in its own thread: `inspect` waits for replies, and nothing on the event path may wait.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery
from celery.backends.base import DisabledBackend
from celery.utils.saferepr import saferepr
from peewee import Database

from webui import broadcasts
from webui.collector.merge import UNRESOLVABLE_STATES, UNRESOLVED_EVENT, UNRESOLVED_SOURCE

log = logging.getLogger(__name__)

UNFINISHED_STATES = ("PENDING", "RECEIVED", "STARTED", "LOST")  # LOST: its worker answers again
MAX_BACKEND_LOOKUPS = 5000
MAX_UNRESOLVED = 20_000  # marked per reconciliation, newest first: beyond that a gap's damage is plain anyway
_BACKEND_EVENTS = {"SUCCESS": "task-succeeded", "FAILURE": "task-failed", "REVOKED": "task-revoked"}


def inspect_workers(app: Celery, timeout: float, expected: int | None = None
                    ) -> tuple[list[dict[str, Any]], set[str]]:
    """Synthetic events from inspect active/reserved/scheduled, and the workers that answered.

    The three broadcasts run at once, and each returns as soon as `expected` workers replied (else after
    `timeout`): a repair that arrives late is still correct, but one that arrives early is more useful.
    """
    limit = expected or None
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="webui-inspect") as pool:
        active = pool.submit(broadcasts.inspect, app, "active", timeout=timeout, limit=limit, safe=True)
        reserved = pool.submit(broadcasts.inspect, app, "reserved", timeout=timeout, limit=limit)
        scheduled = pool.submit(broadcasts.inspect, app, "scheduled", timeout=timeout, limit=limit)
    events: list[dict[str, Any]] = []
    answered: set[str] = set()
    now = time.time()
    for hostname, requests in (active.result() or {}).items():
        answered.add(hostname)
        events.extend(_event("task-started", hostname, r, r.get("time_start") or now) for r in requests)
    for hostname, requests in (reserved.result() or {}).items():
        answered.add(hostname)
        events.extend(_event("task-received", hostname, r, now) for r in requests)
    for hostname, entries in (scheduled.result() or {}).items():
        answered.add(hostname)
        events.extend(_event("task-received", hostname, e.get("request") or {}, now, eta=e.get("eta"))
                      for e in entries)
    return [e for e in events if e["uuid"]], answered


def _event(etype: str, hostname: str, request: dict[str, Any], ts: float, **extra: Any) -> dict[str, Any]:
    return {
        "type": etype, "uuid": request.get("id"), "hostname": hostname, "timestamp": ts,
        "name": request.get("name"), "args": celery_repr(request.get("args"), positional=True),
        "kwargs": celery_repr(request.get("kwargs")),
        **{k: v for k, v in extra.items() if v is not None},
    }


def celery_repr(value: Any, positional: bool = False) -> str | None:
    """Text like Celery's argsrepr/kwargsrepr. `active(safe=True)` replies carry it already; `reserved` and
    `scheduled` carry values, with positional args as a JSON list where Celery shows a tuple."""
    if value is None or isinstance(value, str):
        return value
    if positional and isinstance(value, list):
        value = tuple(value)
    return saferepr(value, 1024)


def online_workers(db: Database) -> int:
    """Workers the store last saw online: how many replies to wait for."""
    with db.connection_context():
        return int(db.execute_sql(f"SELECT COUNT(*) FROM worker WHERE online = {db.param}", (True,)).fetchone()[0])


def unfinished_tasks(db: Database, workers: set[str], before: float) -> list[str]:
    """Task ids still unfinished in the store, last touched before `before`, on one of `workers`."""
    if not workers:
        return []
    p = db.param
    states = ", ".join([p] * len(UNFINISHED_STATES))
    hosts = ", ".join([p] * len(workers))
    with db.connection_context():
        rows = db.execute_sql(
            f"SELECT uuid FROM task WHERE state IN ({states}) AND worker IN ({hosts}) AND updated_at < {p} "
            f"ORDER BY updated_at DESC LIMIT {MAX_BACKEND_LOOKUPS}",
            [*UNFINISHED_STATES, *sorted(workers), before]).fetchall()
    return [r[0] for r in rows]


def backend_outcomes(app: Celery, task_ids: list[str]) -> list[dict[str, Any]]:
    """Synthetic end events for tasks whose result the backend holds."""
    backend = app.backend
    if isinstance(backend, DisabledBackend):
        return []
    events = []
    for task_id in task_ids:
        meta = backend.get_task_meta(task_id)
        etype = _BACKEND_EVENTS.get(meta.get("status"))
        if etype is None:
            continue
        done = meta.get("date_done")
        ts = done.timestamp() if hasattr(done, "timestamp") else time.time()
        event: dict[str, Any] = {"type": etype, "uuid": task_id, "timestamp": ts}
        if etype == "task-succeeded":
            event["result"] = celery_repr(meta.get("result"))
        elif etype == "task-failed":
            event["exception"] = celery_repr(meta.get("result"))
            event["traceback"] = meta.get("traceback")
        events.append(event)
    return events


def reconcile(app: Celery, db: Database, writer: Any, *, timeout: float, gap_ended: float) -> dict[str, int]:
    """Inspect the workers and the backend, and hand repairs to the writer; returns what was found."""
    active, answered = inspect_workers(app, timeout, online_workers(db))
    if active:
        writer.put_repairs(active, "inspect")
    listed = {e["uuid"] for e in active}
    candidates = [t for t in unfinished_tasks(db, answered, gap_ended) if t not in listed]
    settled = backend_outcomes(app, candidates)
    if settled:
        writer.put_repairs(settled, "backend")
    known = listed | {e["uuid"] for e in settled}
    unresolved = [{"type": UNRESOLVED_EVENT, "uuid": t, "timestamp": gap_ended, "before": gap_ended}
                  for t in unresolved_tasks(db, gap_ended) if t not in known]
    if unresolved:
        writer.put_repairs(unresolved, UNRESOLVED_SOURCE)
    found = {"workers": len(answered), "inspected": len(active), "backend": len(settled),
             "unresolved": len(unresolved)}
    log.info("reconciled after gap: %(workers)d workers answered, %(inspected)d tasks running or queued, "
             "%(backend)d finished tasks read from the result backend, %(unresolved)d unfinished tasks nobody "
             "could account for", found)
    return found


def unresolved_tasks(db: Database, before: float) -> list[str]:
    """Task ids still unfinished in the store and last touched before `before` (along `task (state,
    updated_at)`), newest first."""
    p = db.param
    states = sorted(UNRESOLVABLE_STATES)
    with db.connection_context():
        rows = db.execute_sql(
            f"SELECT uuid FROM task WHERE state IN ({', '.join([p] * len(states))}) AND updated_at < {p} "
            f"ORDER BY updated_at DESC LIMIT {MAX_UNRESOLVED}", [*states, before]).fetchall()
    return [r[0] for r in rows]
