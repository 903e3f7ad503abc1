"""Mark LOST the tasks whose worker died while running them: the collector's verdict, made every detect pass.

It runs in the leading collector (thread `webui-lost-marker`) whether or not an alert rule watches lost tasks,
because LOST is a state of the store that every page shows. It only reads the store; its verdicts are synthetic
`task-lost` events handed to the writer (`put_repairs(…, source="detector")`), so they go through the merge rules
like any event (webui.collector.merge): a verdict lands only on a task still STARTED on that worker, it is kept
in the task's event log, and a later real event overrides it (the worker was only cut off and reports the
outcome, or an acks_late redelivery starts the task again, here or elsewhere).

What is lost (celery-facts §7):
- A task STARTED on a worker the store has offline by **heartbeat timeout**: the main process was SIGKILLed or
  OOM-killed, or its host was lost, and no `worker-offline` was sent. Its pool child died with it. Lost once the
  worker has stayed offline for `grace_seconds` more (by default one more offline window of its own, so a worker
  that was only slow gets twice its window). Without acks_late the message was acked at start: lost for good.
  With acks_late the broker redelivers it (Redis after the visibility timeout, RabbitMQ at once) and the new
  start moves the task on.
- After a clean **`worker-offline`**, a task still STARTED is not lost yet: a warm shutdown sends
  `worker-offline` first and then waits for the running tasks, whose events still arrive (measured with Celery
  5.7: `task-succeeded` 7.5 s after `worker-offline`; a cold shutdown sends `task-cancelled` for each running
  task instead). The worker is silent either way, so only time tells a long task still finishing from one
  killed with its worker during the shutdown (Kubernetes' SIGKILL after the termination grace period, systemd's
  TimeoutStopSec): lost `shutdown_grace_seconds` after the worker's last sign of life. A finishing task's event
  during the shutdown counts as one, and briefly brings the worker back online until the heartbeat sweep takes
  it offline again by timeout; the worker's transitions tell that apart from a death without shutdown.
- Never a RECEIVED (prefetched) task: its message was not acked and goes back to the queue.
- Never while the monitor was blind: a broker outage stops every worker's heartbeats in the store. While a gap
  is open nothing is marked; after one closes, each worker gets its full window again from the gap's end.
- Never a task that was started again on a worker that is online (a duplicate start): it is running there.

Limits: a worker restarted under the same name faster than its offline window never looks offline; its old
tasks stay STARTED and the stalled-task detector names them.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from celery import Celery
from peewee import Database

from webui.agent.transport import is_redis
from webui.collector.merge import LOST_EVENT, LOST_SOURCE
from webui.collector.workers import DEFAULT_FREQ, REASON_HEARTBEAT, REASON_OFFLINE_EVENT, REASON_ONLINE
from webui.detect import lost_confirm, phrasing
from webui.detect.presence import CHECK_INTERVAL, PresenceWatch
from webui.store.database import discard_connection

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 600.0  # seconds after a clean worker-offline (and the worker's last event) before "lost"
MAX_VERDICTS = 1000  # per pass; a backlog (a whole pool died) is marked over a few passes
RESEND_AFTER = 60.0  # a verdict the writer has not merged yet (database busy) is not queued again before this


@dataclass(frozen=True)
class _Candidate:
    task_id: int
    uuid: str
    worker: str
    started_at: float | None
    starts: int
    worker_id: int
    freq: float | None
    offline_reason: str | None
    offline_at: float
    last_seen: float


def find_lost(db: Database, now: float, grace_seconds: float | None = None, *, missed_heartbeats: float = 3.0,
              shutdown_grace_seconds: float = SHUTDOWN_GRACE, limit: int = MAX_VERDICTS) -> list[dict[str, Any]]:
    """`task-lost` events for the tasks lost as of `now` (see the module docstring), oldest task first.

    `grace_seconds`: how long a worker offline by heartbeat timeout stays offline before its tasks are lost;
    None: one more offline window of that worker (`freq × missed_heartbeats`).
    """
    p = db.param
    if db.execute_sql("SELECT 1 FROM collector_gap WHERE ended_at IS NULL LIMIT 1").fetchone():
        return []  # blind right now: silence proves nothing
    rows = db.execute_sql(
        "SELECT t.id, t.uuid, t.worker, t.started_at, t.starts, w.id, w.freq, w.offline_reason, "
        "w.status_changed_at, w.last_seen FROM task t JOIN worker w ON w.hostname = t.worker "
        f"WHERE t.state = {p} AND w.online = {p} AND w.status_changed_at IS NOT NULL ORDER BY t.id LIMIT {p}",
        ("STARTED", False, int(limit))).fetchall()
    candidates = [_Candidate(*row) for row in rows]
    if not candidates:
        return []
    shutdowns = _shutdowns(db, candidates)
    gap_ends = _gap_ends(db, min(c.last_seen for c in candidates))
    running_elsewhere = _running_elsewhere(db, [c for c in candidates if c.starts > 1])
    events = []
    for c in candidates:
        if c.task_id in running_elsewhere:
            continue
        window = (c.freq or DEFAULT_FREQ) * missed_heartbeats
        shutdown_at = shutdowns.get(c.worker_id)
        if shutdown_at is not None:
            deadline = max(shutdown_at, c.last_seen) + shutdown_grace_seconds
            reason = (f"it announced a shutdown (worker-offline) at {phrasing.moment(shutdown_at, now)} and has "
                      f"not been heard from for {phrasing.duration(now - c.last_seen)}")
        else:
            deadline = c.offline_at + (window if grace_seconds is None else grace_seconds)
            reason = (f"heartbeats stopped, no worker-offline: last heard from at "
                      f"{phrasing.moment(c.last_seen, now)}")
        blind_until = max((end for end in gap_ends if end > c.last_seen), default=None)
        if blind_until is not None:
            deadline = max(deadline, blind_until + 2 * window)  # a full window, then the grace, after the gap
        if now < deadline:
            continue
        events.append({"type": LOST_EVENT, "uuid": c.uuid, "hostname": c.worker,
                       "timestamp": shutdown_at if shutdown_at is not None else c.offline_at, "reason": reason})
    return events


def _shutdowns(db: Database, candidates: list[_Candidate]) -> dict[int, float]:
    """Worker id → when it announced a shutdown that no later heartbeat undid, for the candidates' workers.

    An online transition by a "task event" does not undo it: a warm shutdown's tasks still report.
    """
    p = db.param
    found: dict[int, float] = {}
    for worker_id in {c.worker_id for c in candidates}:
        # From a minute before its oldest task started (the task's time is the worker's clock, `at` ours).
        since = min((c.started_at for c in candidates if c.worker_id == worker_id and c.started_at is not None),
                    default=60.0) - 60.0
        shutdown_at = None
        rows = db.execute_sql(f"SELECT online, at, reason FROM worker_event WHERE worker_id = {p} AND at >= {p} "
                              "ORDER BY at, id", (worker_id, since)).fetchall()
        for online, at, reason in rows:
            if online and reason in (REASON_ONLINE, REASON_HEARTBEAT):
                shutdown_at = None
            elif not online and reason == REASON_OFFLINE_EVENT:
                shutdown_at = at
        current = next(c for c in candidates if c.worker_id == worker_id)
        if current.offline_reason == REASON_OFFLINE_EVENT:
            shutdown_at = current.offline_at
        if shutdown_at is not None:
            found[worker_id] = shutdown_at
    return found


def _gap_ends(db: Database, after: float) -> list[float]:
    """When each gap that ended after `after` ended: the monitor was blind until then."""
    rows = db.execute_sql(f"SELECT ended_at FROM collector_gap WHERE ended_at > {db.param}", (after,)).fetchall()
    return [row[0] for row in rows]


def _running_elsewhere(db: Database, started_twice: list[_Candidate]) -> set[int]:
    """Tasks started more than once whose other start is on a worker that is online: not lost."""
    if not started_twice:
        return set()
    p = db.param
    ids = [c.task_id for c in started_twice]
    rows = db.execute_sql(
        "SELECT e.task_id, e.hostname FROM task_event e JOIN worker w ON w.hostname = e.hostname "
        f"WHERE e.task_id IN ({', '.join([p] * len(ids))}) AND e.type = {p} AND w.online = {p}",
        (*ids, "task-started", True)).fetchall()
    return {task_id for task_id, _ in rows}


def mark_lost_loop(db: Database, writer: Any, settings: Any, *, stop: threading.Event,
                   alive: Callable[[], bool], app: Celery | None = None,
                   clock: Callable[[], float] = time.time) -> None:
    """Until stopped: every `detect_interval` the heartbeat rules, each verdict confirmed with the workers
    (webui.detect.lost_confirm, when given the app); with the companion (`agent_url`), every 2 s its
    running-task marks too (webui.detect.presence). Verdicts go to the writer."""
    # Running-task marks are Redis keys: a companion writing to RabbitMQ leaves none (docs/companion.md).
    presence = PresenceWatch(settings.agent_url) if settings.agent_url and is_redis(settings.agent_url) else None
    sent: dict[str, float] = {}
    heartbeat_pass_at = 0.0
    while not stop.is_set() and alive():
        now = clock()
        sent = {uuid: at for uuid, at in sent.items() if now - at < RESEND_AFTER}
        events = []
        if presence is not None:
            events = [e for e in _judge(db, "presence", partial(presence.check, db, now)) if e["uuid"] not in sent]
        if now >= heartbeat_pass_at:
            heartbeat_pass_at = now + settings.detect_interval
            vouched = presence.alive if presence is not None else set()
            judged = [e for e in _judge(db, "heartbeat", partial(
                find_lost, db, now, missed_heartbeats=settings.worker_offline_heartbeats))
                if e["uuid"] not in sent and e["hostname"] not in vouched
                and all(e["uuid"] != mine["uuid"] for mine in events)]
            events += lost_confirm.confirm(app, judged, settings.inspect_timeout) if app is not None else judged
        if events:
            writer.put_repairs(events, LOST_SOURCE)
            sent.update((e["uuid"], now) for e in events)
            log.info("marked %d task(s) lost: %s", len(events), ", ".join(
                f"{e['uuid']} on {e['hostname']}" for e in events[:5]) + (" …" if len(events) > 5 else ""))
        stop.wait(CHECK_INTERVAL if presence is not None else settings.detect_interval)
    if presence is not None:
        presence.close()


# The rules whose last pass failed. Said once when a rule starts failing and once when it works again: the
# presence rule runs every 2 s, and its Redis being away would otherwise fill the log.
_failing: set[str] = set()


def _judge(db: Database, rule: str, verdicts: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    try:
        with db.connection_context():
            found = verdicts()
    except Exception as exc:  # noqa: BLE001 - the next pass tries again
        if rule not in _failing:
            _failing.add(rule)
            log.warning("lost-task marking (%s) failed: %s: %s; trying again every pass, quietly until it works",
                        rule, type(exc).__name__, exc)
        else:
            log.debug("lost-task marking (%s) still failing: %s", rule, exc)
        discard_connection(db)
        return []
    if rule in _failing:
        _failing.discard(rule)
        log.info("lost-task marking (%s) works again", rule)
    return found
