"""Duplicate executions: a task id started again without a retry, on another worker or on the same one.

The merge rules keep every start (webui.collector.merge: `executions`, `duplicate_starts`, and each
`task-started` in the event log), so the detector reads the tasks updated in the last `window_minutes` that
ran more often than their retries explain, through the partial index of migration 0011, and names the likely
cause of each repeat from the events between the two starts (celery-facts §7):
- the first start's worker went offline before the second start, or the monitor marked the task lost: worker
  loss, and the unacknowledged (acks_late) message was delivered again;
- a `task-rejected(requeue=True)` or a `task-cancelled` between them: a requeue by the worker itself;
- otherwise a redelivery by the broker while the first execution still ran: on Redis the visibility timeout
  (read from the monitored app, `broker_transport_options`), on RabbitMQ the consumer timeout.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webui.detect import phrasing, redelivery
from webui.detect.findings import DetectContext, Finding
from webui.detect.registry import Detector, Param, register

MAX_FINDINGS = 200
_ENDS = ("task-succeeded", "task-failed")


@dataclass(frozen=True)
class Event:
    type: str
    timestamp: float | None
    received: float
    hostname: str | None
    source: str | None = None

    @property
    def at(self) -> float:
        return self.timestamp if self.timestamp is not None else self.received


@dataclass
class Repeat:
    first: Event
    second: Event
    between: list[Event] = field(default_factory=list)


def find_repeats(events: list[Event]) -> list[Repeat]:
    """Each start that followed another start of the same attempt (a retry begins a new attempt)."""
    repeats = []
    current: Event | None = None
    between: list[Event] = []
    for event in events:
        if event.type == "task-retried":
            current, between = None, []
        elif event.type == "task-started":
            if event.source is not None and current is not None and event.hostname == current.hostname:
                continue  # a repair confirming the running start (the merge does not count it)
            if current is not None:
                repeats.append(Repeat(current, event, between))
            current, between = event, []
        elif current is not None:
            between.append(event)
    return repeats


@dataclass(frozen=True)
class Cause:
    code: str
    text: str


def cause(repeat: Repeat, first_worker_offline_at: float | None, broker: str | None, vt: float,
          eta: str | None) -> Cause:
    """The likely cause of one repeat. `first_worker_offline_at`: when the first start's worker went offline, if
    it was still offline at the second start."""
    host = repeat.first.hostname or "the first worker"
    kinds = {e.type for e in repeat.between}
    if "task-lost" in kinds or first_worker_offline_at is not None:
        when = f" at {phrasing.moment(first_worker_offline_at, repeat.second.at)}" if first_worker_offline_at \
            else ""
        return Cause("worker_loss", f"worker loss (acks_late redelivery): {host} went offline{when} while running "
                     "it, and its unacknowledged message was delivered again")
    if "task-rejected" in kinds:
        return Cause("requeued", f"requeued by {host} (task-rejected with requeue): the task raised "
                     "Reject(requeue=True), or its pool process died with acks_late and reject_on_worker_lost")
    if "task-cancelled" in kinds:
        return Cause("cancelled", f"cancelled on {host} after a broker connection loss "
                     "(worker_cancel_long_running_tasks_on_connection_loss) and delivered again")
    gap = repeat.second.at - repeat.first.at
    still_running = not any(e.type in _ENDS and e.hostname == repeat.first.hostname for e in repeat.between)
    if broker == redelivery.REDIS:
        if still_running or eta or gap >= 0.9 * vt:
            return Cause("visibility_timeout", f"Redis visibility_timeout ({vt:g} s) shorter than the task's "
                         f"{'ETA' if eta else 'runtime'}: the message was delivered again "
                         f"{phrasing.duration(gap)} after the first start, while {host} still held it")
        return Cause("other_visibility_timeout", f"a redelivery this app's visibility_timeout ({vt:g} s) does not "
                     f"explain ({phrasing.duration(gap)} after the first start): another client of this Redis "
                     "with a shorter visibility_timeout (a monitor, another app) restores unacknowledged messages")
    if broker == redelivery.RABBITMQ and still_running:
        return Cause("consumer_timeout", "RabbitMQ consumer_timeout: the broker closed the channel of a consumer "
                     "that held the message unacknowledged too long, and delivered it again")
    return Cause("redelivery", "the broker delivered the message again (acks_late redelivery)")


def run(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    db = ctx.db
    p = db.param
    since = ctx.now - float(params["window_minutes"]) * 60
    # The predicate repeats migration 0011's partial index word for word, so the index is used.
    rows = db.execute_sql(
        "SELECT id, uuid, name, eta FROM task WHERE executions > retries + 1 "
        f"AND updated_at >= {p} ORDER BY updated_at DESC LIMIT {p}", (since, MAX_FINDINGS)).fetchall()
    if not rows:
        return []
    broker = redelivery.broker_kind(ctx.celery_app)
    vt = redelivery.visibility_timeout(ctx.celery_app)
    findings = []
    for task_id, uuid, name, eta in rows:
        repeats = find_repeats(_events(ctx, task_id))
        if not repeats:
            continue
        last = repeats[-1]
        why = cause(last, _offline_between(ctx, last), broker, vt, eta)
        starts = [repeats[0].first, *(r.second for r in repeats)]
        findings.append(Finding(
            detector="task_duplicate", subject=uuid, scope=name or "",
            summary=f"{name or 'A task of unknown name'} {uuid} {_ran(starts, ctx.now)}; likely cause: {why.text}",
            detail={"uuid": uuid, "name": name, "cause": why.code, "cause_text": why.text, "broker": broker,
                    "visibility_timeout": vt if broker == redelivery.REDIS else None,
                    "starts": [{"worker": s.hostname, "at": s.at} for s in starts]},
            link=f"/task/{uuid}", value=len(starts), since=last.second.at))
    return findings


def _ran(starts: list[Event], now: float) -> str:
    hosts = [s.hostname or "?" for s in starts]
    times = "twice" if len(starts) == 2 else f"{len(starts)} times"
    where = f"on {hosts[0]}" if len(set(hosts)) == 1 else f"on {', '.join(dict.fromkeys(hosts))}"
    return f"started {times} {where} (first at {phrasing.moment(starts[0].at, now)})"


def _events(ctx: DetectContext, task_id: int) -> list[Event]:
    p = ctx.db.param
    rows = ctx.db.execute_sql(f"SELECT type, timestamp, received, hostname, source FROM task_event "
                              f"WHERE task_id = {p} ORDER BY seq", (task_id,)).fetchall()
    return [Event(*row) for row in rows]


def _offline_between(ctx: DetectContext, repeat: Repeat) -> float | None:
    """When the first start's worker went offline, if it did after that start and was still offline at the
    second one (collector times: `received`)."""
    if not repeat.first.hostname:
        return None
    p = ctx.db.param
    row = ctx.db.execute_sql(
        "SELECT e.online, e.at FROM worker_event e JOIN worker w ON w.id = e.worker_id "
        f"WHERE w.hostname = {p} AND e.at <= {p} ORDER BY e.at DESC, e.id DESC LIMIT 1",
        (repeat.first.hostname, repeat.second.received)).fetchone()
    if row is None or row[0] or row[1] < repeat.first.received:
        return None
    return float(row[1])


register(Detector(
    name="task_duplicate", title="Duplicate execution", scope_kind="task", run=run,
    params={"window_minutes": Param(60, "Report tasks that ran again in the last this many minutes.",
                                    min=1, max=10080)},
    description="A task id started twice without a retry (on two workers, or twice on one), with the likely "
                "cause: worker loss with acks_late, a requeue, or the broker's visibility or consumer timeout."))
