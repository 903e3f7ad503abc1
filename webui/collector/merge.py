"""Merge rules: the state of a task from events that arrive late, twice, or out of order.

Pure logic, no I/O: the writer loads a `TaskState`, applies events with `apply_task_event`, and writes the
state back together with the returned `EventRecord`s. Celery's own `State` is not used because it forgets
(LRU) and lets a second execution silently overwrite the first (celery-facts §1.5).

The ordering key of a state is (attempt, delivery, rank):
- *attempt* is the task's `retries` number. `task-sent`/`task-received` carry it; `task-started`,
  `task-succeeded`, `task-failed`, `task-revoked` belong to the newest attempt seen; `task-retried` belongs to
  the attempt that was last started, because the retried attempt's new `task-received` often arrives before it.
- *delivery* counts redeliveries inside one attempt after `task-rejected(requeue=True)` or `task-cancelled`
  (retries does not change on redelivery).
- *rank* orders the phases of one delivery: PENDING < RECEIVED < STARTED < end (RETRY, terminal states).

An event only moves the state forward along that key. Among terminal states of the same delivery Celery's
precedence applies (SUCCESS > FAILURE > REVOKED > REJECTED). Every event is kept in the task's event log
whatever it does to the state, so nothing is lost: a late `task-received` is recorded but does not move a
finished task back; a second `task-started` of the same delivery (a duplicate execution) is counted in
`executions` and recorded with its hostname, but does not overwrite the first worker.

LOST is the monitor's own verdict, not Celery's: a `task-lost` event that only the collector makes
(webui.detect.lost_marker, source "detector") when the worker running a STARTED task went offline without
finishing it. It ends the delivery with the lowest precedence, because the verdict can be wrong (the worker was
only cut off) or overtaken: the same delivery's real `task-succeeded`/`task-failed`/`task-retried` still win,
and a later `task-received`/`task-started` (acks_late redelivery, on any worker) is a new delivery, as after a
requeue. A `task-lost` that arrives once the task has moved on (finished, or started elsewhere) changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from webui import fastjson

PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
RETRY = "RETRY"
REVOKED = "REVOKED"
REJECTED = "REJECTED"
CANCELLED = "CANCELLED"
LOST = "LOST"  # the monitor's verdict (see the module docstring); never sent by Celery

UNRESOLVABLE_STATES = frozenset({PENDING, RECEIVED, STARTED, RETRY})  # what a gap can leave unsettled
TERMINAL_STATES = frozenset({SUCCESS, FAILURE, REVOKED, REJECTED})  # LOST is not: its worker may come back
ALL_STATES = (PENDING, RECEIVED, STARTED, RETRY, CANCELLED, SUCCESS, FAILURE, REVOKED, REJECTED, LOST)
PROGRESS_EVENT = "task-progress"  # the companion's report_progress (webui.agent): how far the running attempt got
LOST_EVENT = "task-lost"
LOST_SOURCE = "detector"  # the only source whose `task-lost` counts: one on the event channel is a custom event
# Reconciliation's verdict after a gap: neither the workers nor the result backend know what became of the task.
# Not a state: the task keeps the one it had, marked "unknown since" its last event, until any later event.
UNRESOLVED_EVENT = "task-unresolved"
UNRESOLVED_SOURCE = "reconcile"
# The worker companion's records (webui.agent): first-hand like events, unlike repairs; they carry `retries` on
# every transition, so their attempt is known exactly. An event and a record of one transition count once
# (webui.collector.sources).
AGENT_SOURCE = "agent"
FIRST_HAND_SOURCES = frozenset({None, AGENT_SOURCE})
# `detail` key: [hostname, attempt, delivery] of a start only a repair reported, until the worker's own event of
# it arrives (a reconciliation can ask the worker before the run's task-started is stored).
REPAIRED_START = "repaired_start"

# Phase rank inside one delivery; END covers RETRY, CANCELLED, requeued rejections and terminal states.
_RANK_PENDING, _RANK_RECEIVED, _RANK_STARTED, _RANK_END = 0, 1, 2, 3
_TERMINAL_PRECEDENCE = {SUCCESS: 4, FAILURE: 3, REVOKED: 2, REJECTED: 1, LOST: -1}  # others (RETRY…): 0

# Fields every event carries, and a record's `source`; they have columns of their own in task_event.
COMMON_FIELDS = frozenset({"type", "uuid", "hostname", "timestamp", "utcoffset", "pid", "clock", "local_received",
                           "source"})

# Event field -> task column, for fields that describe the task rather than one event.
TASK_FIELDS = {
    "name": "name", "args": "args", "kwargs": "kwargs", "result": "result", "retries": "retries",
    "eta": "eta", "expires": "expires", "parent_id": "parent_id", "root_id": "root_id",
    "queue": "queue", "exchange": "exchange", "routing_key": "routing_key", "runtime": "runtime",
}
# Set from the event of the newest attempt; older attempts only fill what is still empty.
_ATTEMPT_FIELDS = ("args", "kwargs", "eta", "expires", "queue", "exchange", "routing_key")
_FILL_ONLY_FIELDS = ("name", "parent_id", "root_id")
# exception and traceback are not in TASK_FIELDS: they stay in every event's data even when the task row holds
# the same text, because each retry's own traceback must survive the next retry overwriting the task row.

_TRANSITION_COLUMN = {
    "task-sent": "sent_at", "task-received": "received_at", "task-started": "started_at",
    "task-succeeded": "succeeded_at", "task-failed": "failed_at", "task-retried": "retried_at",
    "task-revoked": "revoked_at", "task-rejected": "rejected_at", "task-cancelled": "cancelled_at",
}
_DETAIL_FIELDS = ("terminated", "signum", "expired", "requeue")


@dataclass(slots=True)
class TaskState:
    """The mutable image of one `task` row while the writer merges a batch."""

    uuid: str
    id: int | None = None
    name: str | None = None
    state: str | None = None
    args: str | None = None
    kwargs: str | None = None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    worker: str | None = None
    queue: str | None = None
    exchange: str | None = None
    routing_key: str | None = None
    retries: int = 0
    eta: str | None = None
    expires: str | None = None
    parent_id: str | None = None
    root_id: str | None = None  # only when the root is another task; None: the task is its own root
    sent_at: float | None = None
    received_at: float | None = None
    started_at: float | None = None
    succeeded_at: float | None = None
    failed_at: float | None = None
    retried_at: float | None = None
    revoked_at: float | None = None
    rejected_at: float | None = None
    cancelled_at: float | None = None
    runtime: float | None = None
    attempt: int = 0
    delivery: int = 0
    rank: int = -1
    started_attempt: int = 0
    started_delivery: int = 0
    executions: int = 0
    starts: int = 0
    event_count: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    updated_at: float | None = None
    progress_every: float | None = None  # the running delivery's promise of a progress report every N s


class EventRecord(NamedTuple):
    """One row of a task's event log, in the column order of `task_event` (it goes to the database as is)."""

    task_id: int | None
    seq: int
    type: str
    timestamp: float | None
    received: float
    hostname: str | None
    pid: int | None
    clock: int | None
    source: str | None
    data: str | None


def apply_task_event(task: TaskState, event: dict[str, Any], source: str | None = None) -> EventRecord:
    """Merge one sanitized task event into `task` and return the record for the event log."""
    etype = event["type"]
    ts = _number(event.get("timestamp"))
    attempt = event_attempt(task, etype, event, source)
    handler = _STATE_HANDLERS.get(etype)
    if etype == LOST_EVENT and source != LOST_SOURCE:
        handler = None  # anyone can publish on the event channel; only the collector declares a task lost
    if etype == UNRESOLVED_EVENT and source != UNRESOLVED_SOURCE:
        handler = None  # likewise: only reconciliation says it could not find a task
    elif etype != UNRESOLVED_EVENT:
        task.detail.pop("unknown_since", None)  # heard of again: whatever this event says is known
    host = event.get("hostname") or ""
    if source not in FIRST_HAND_SOURCES:
        # A repair (inspect, result backend) only fills in what real events did not say.
        event = {k: v for k, v in event.items() if k not in TASK_FIELDS or getattr(task, TASK_FIELDS[k]) is None}
        if etype in ("task-started", "task-received") and not _is_newer(task, attempt, task.delivery, _RANK_STARTED):
            handler = None  # a repair that confirms what we know is not another execution
    elif etype == "task-started" and handler is not None:
        _same_run_as_repaired_start(task, attempt, host)
    if handler is not None:
        handler(task, event, attempt, ts)
        if etype == "task-started" and source not in FIRST_HAND_SOURCES:
            task.detail[REPAIRED_START] = [host, task.started_attempt, task.started_delivery]
    else:
        _fill_task_fields(task, event, attempt)  # custom events (Task.send_event): logged, state kept
    if task.state is None:
        # First heard of through a custom event (the monitor came up mid-task): Celery's State says PENDING
        # too. The rank is left alone, so the task's real events still move it on.
        task.state = PENDING
    task.updated_at = _number(event.get("local_received"))
    return _record(task, event, source)


def event_attempt(task: TaskState, etype: str, event: dict[str, Any], source: str | None = None) -> int:
    """The attempt an event belongs to (see the module docstring); a companion record says it itself."""
    if etype in ("task-sent", "task-received") or (source == AGENT_SOURCE and (etype in _TRANSITION_COLUMN
                                                                                 or etype == PROGRESS_EVENT)):
        retries = event.get("retries")
        if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0:
            return retries
        return task.attempt
    if etype == "task-retried":
        return task.started_attempt
    return task.attempt


def _is_newer(task: TaskState, attempt: int, delivery: int, rank: int) -> bool:
    return (attempt, delivery, rank) > (task.attempt, task.delivery, task.rank)


def _begin(task: TaskState, attempt: int) -> None:
    """Reset what belongs to a single attempt when a newer attempt starts."""
    if attempt > task.attempt:
        task.delivery = 0
        task.rank = -1
        task.worker = None
        task.started_at = task.succeeded_at = task.failed_at = None
        task.revoked_at = task.rejected_at = task.cancelled_at = None
        task.runtime = None
        task.exception = task.traceback = None
        task.result = None
        _withdraw_promise(task)


def _same_run_as_repaired_start(task: TaskState, attempt: int, host: str) -> None:
    """A worker's own `task-started` for the run a repair (inspect, after a gap) already started: the same run,
    counted once, at the worker's time. On another worker, or another delivery, it is another run."""
    seen = task.detail.pop(REPAIRED_START, None)
    if not isinstance(seen, list) or len(seen) != 3:
        return
    seen_on, seen_attempt, seen_delivery = seen
    if (attempt, _redelivery(task, attempt)) == (seen_attempt, seen_delivery) and seen_on in ("", host) \
            and (task.started_attempt, task.started_delivery) == (seen_attempt, seen_delivery):
        task.executions -= 1
        task.starts -= 1
        task.started_at = None  # the handler sets the worker's own time


def _redelivery(task: TaskState, attempt: int) -> int:
    """The delivery number of a received/started event: a new one after a requeue or cancellation."""
    if attempt == task.attempt and task.state in (REJECTED, CANCELLED) and task.rank == _RANK_END \
            and task.detail.get("requeue", task.state == CANCELLED):
        return task.delivery + 1
    if attempt == task.attempt and task.state == LOST:
        return task.delivery + 1  # an acks_late message redelivered after its worker died
    return task.delivery if attempt == task.attempt else 0


def _on_sent(task: TaskState, event: dict[str, Any], attempt: int, ts: float | None) -> None:
    _fill_task_fields(task, event, attempt)
    keep_beat_stamp(task, event)
    if task.sent_at is None:
        task.sent_at = ts  # the first send: retries re-send, but the task was created then
    if _is_newer(task, attempt, 0, _RANK_PENDING):
        _begin(task, attempt)
        _set_state(task, PENDING, attempt, 0, _RANK_PENDING)


def keep_beat_stamp(task: TaskState, event: dict[str, Any]) -> None:
    """The entry and due time the companion in beat stamped this fire with (webui.agent.beat), if it did."""
    entry = event.get("beat_entry")
    if isinstance(entry, str) and entry:
        due = event.get("beat_due")
        task.detail["beat"] = {"entry": entry, "due": due if isinstance(due, int | float) else None}


def _on_received(task: TaskState, event: dict[str, Any], attempt: int, ts: float | None) -> None:
    _fill_task_fields(task, event, attempt)
    delivery = _redelivery(task, attempt)
    if _is_newer(task, attempt, delivery, _RANK_RECEIVED):
        _begin(task, attempt)
        _set_state(task, RECEIVED, attempt, delivery, _RANK_RECEIVED)
        task.received_at = ts
        task.worker = event.get("hostname") or task.worker
    elif task.received_at is None:
        task.received_at = ts


def _on_started(task: TaskState, event: dict[str, Any], attempt: int, ts: float | None) -> None:
    _fill_task_fields(task, event, attempt)
    task.executions += 1
    delivery = _redelivery(task, attempt)
    if (attempt, delivery) > (task.started_attempt, task.started_delivery):
        task.started_attempt, task.started_delivery, task.starts = attempt, delivery, 0
    if (attempt, delivery) == (task.started_attempt, task.started_delivery):
        task.starts += 1
    if _is_newer(task, attempt, delivery, _RANK_STARTED):
        _begin(task, attempt)
        _set_state(task, STARTED, attempt, delivery, _RANK_STARTED)
        task.started_at = ts
        task.worker = event.get("hostname") or task.worker
        _withdraw_promise(task)  # a redelivered run makes its own promise (its first record follows its start)
    elif task.started_at is None and attempt == task.attempt:
        task.started_at = ts
    if task.starts > 1 and (attempt, delivery) == (task.attempt, task.delivery):
        # The same delivery started twice: a duplicate execution (visibility timeout, worker loss with
        # acks_late). Both starts stay in the event log; the first worker stays on the task.
        task.detail["duplicate_starts"] = task.starts - 1


def _finisher(state: str):
    """Handler for an event that ends a delivery (terminal or not)."""

    def handle(task: TaskState, event: dict[str, Any], attempt: int, ts: float | None) -> None:
        _fill_task_fields(task, event, attempt)
        column = _TRANSITION_COLUMN[event["type"]]
        if state == RETRY and ts is not None and (task.retried_at is None or ts > task.retried_at):
            task.retried_at = ts  # the latest retry, even when the next attempt is already under way
        if not _ends_delivery_wins(task, state, attempt):
            if getattr(task, column) is None and attempt == task.attempt:
                setattr(task, column, ts)
            return
        _begin(task, attempt)
        _set_state(task, state, attempt, task.delivery if attempt == task.attempt else 0, _RANK_END)
        setattr(task, column, ts)
        if not task.worker and event.get("hostname"):
            task.worker = event["hostname"]
        _apply_outcome(task, event, state, ts)

    return handle


def _ends_delivery_wins(task: TaskState, new_state: str, attempt: int) -> bool:
    if _is_newer(task, attempt, task.delivery if attempt == task.attempt else 0, _RANK_END):
        return True
    if attempt != task.attempt or task.rank != _RANK_END:
        return False
    # Two ends of the same delivery (a duplicate execution, or revoke racing success): Celery's precedence.
    return _TERMINAL_PRECEDENCE.get(new_state, 0) > _TERMINAL_PRECEDENCE.get(task.state or "", 0)


def _apply_outcome(task: TaskState, event: dict[str, Any], state: str, ts: float | None) -> None:
    for key in _DETAIL_FIELDS:
        if key in event:
            task.detail[key] = event[key]
    if state == SUCCESS:
        task.result = event.get("result")
        task.exception = task.traceback = None
        runtime = _number(event.get("runtime"))
        task.runtime = runtime if runtime is not None else _elapsed(task.started_at, ts)
    elif state in (FAILURE, RETRY):
        task.exception = event.get("exception")
        task.traceback = event.get("traceback")
        task.runtime = _elapsed(task.started_at, ts)
    elif state == REJECTED and event.get("requeue") is not True:
        task.detail["requeue"] = False


def _on_lost(task: TaskState, event: dict[str, Any], attempt: int, ts: float | None) -> None:
    """The collector's verdict that the delivery running on a dead worker will not finish there."""
    host = event.get("hostname")
    if task.state != STARTED or (host and task.worker and host != task.worker):
        return  # it moved on (finished, retried, redelivered elsewhere) before the verdict was merged
    _set_state(task, LOST, task.attempt, task.delivery, _RANK_END)
    task.detail["lost_at"] = ts
    task.detail["lost_worker"] = host or task.worker
    if isinstance(event.get("reason"), str):
        task.detail["lost_reason"] = event["reason"]


def _on_progress(task: TaskState, event: dict[str, Any], attempt: int, ts: float | None) -> None:
    """The latest progress of the newest attempt (an older attempt's late report does not overwrite it), and
    the promise of the next one (`every`: seconds; 0 or null withdraws it) when the record makes or changes it."""
    if attempt < task.attempt:
        return
    if "every" in event:
        _promise(task, event["every"], ts)
    current = _number(event.get("current"))
    if current is None:
        return
    known = task.detail.get("progress")
    if isinstance(known, dict) and (known.get("attempt", 0), known.get("at") or 0) > (attempt, ts or 0):
        return
    message = event.get("message")
    task.detail["progress"] = {"current": current, "total": _number(event.get("total")), "at": ts,
                               "attempt": attempt, "message": message if isinstance(message, str) else None}


def _promise(task: TaskState, every: Any, ts: float | None) -> None:
    seconds = _number(every)
    if seconds is None or seconds <= 0:
        _withdraw_promise(task)
        return
    task.progress_every = seconds
    task.detail["promised_at"] = ts  # the promise's clock starts when it is made


def _withdraw_promise(task: TaskState) -> None:
    task.progress_every = None
    task.detail.pop("promised_at", None)


def _on_unresolved(task: TaskState, event: dict[str, Any], attempt: int, ts: float | None) -> None:
    """Reconciliation found the task nowhere: still unfinished, and untouched since before the gap ended."""
    checked_before = _number(event.get("before"))
    if task.state not in UNRESOLVABLE_STATES or checked_before is None:
        return
    if task.updated_at is not None and task.updated_at >= checked_before:
        return  # an event arrived after reconciliation read the store: it is known again
    task.detail["unknown_since"] = task.updated_at if task.updated_at is not None else ts


def _set_state(task: TaskState, state: str, attempt: int, delivery: int, rank: int) -> None:
    task.state = state
    task.attempt = attempt
    task.delivery = delivery
    task.rank = rank


def _fill_task_fields(task: TaskState, event: dict[str, Any], attempt: int) -> None:
    newest = attempt >= task.attempt
    for key in _ATTEMPT_FIELDS:
        value = event.get(key)
        if value is not None and (newest or getattr(task, key) is None):
            setattr(task, key, value)
    for key in _FILL_ONLY_FIELDS:
        value = event.get(key)
        if value is not None and getattr(task, key) is None and not (key == "root_id" and value == task.uuid):
            setattr(task, key, value)
    retries = event.get("retries")
    if isinstance(retries, int) and not isinstance(retries, bool) and retries > task.retries:
        task.retries = retries


def _record(task: TaskState, event: dict[str, Any], source: str | None) -> EventRecord:
    data = {}
    for key in event.keys() - COMMON_FIELDS:
        value = event[key]
        if value is None:
            continue
        column = TASK_FIELDS.get(key)
        if column is not None and (getattr(task, column) == value or (key == "root_id" and value == task.uuid)):
            continue  # stored once, in the task row
        data[key] = value
    seq = task.event_count
    task.event_count += 1
    pid, clock = event.get("pid"), event.get("clock")
    return EventRecord(
        task.id, seq, event["type"], _number(event.get("timestamp")),
        _number(event.get("local_received")) or 0.0, event.get("hostname"),
        pid if type(pid) is int else None, clock if type(clock) is int else None,
        source, fastjson.dumps(data) if data else None,
    )


def _number(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return value
    return float(value) if kind is int else None


def _elapsed(start: float | None, end: float | None) -> float | None:
    if start is None or end is None or end < start:
        return None
    return end - start


_STATE_HANDLERS = {
    "task-sent": _on_sent,
    "task-received": _on_received,
    "task-started": _on_started,
    "task-succeeded": _finisher(SUCCESS),
    "task-failed": _finisher(FAILURE),
    "task-retried": _finisher(RETRY),
    "task-revoked": _finisher(REVOKED),
    "task-rejected": _finisher(REJECTED),
    "task-cancelled": _finisher(CANCELLED),
    LOST_EVENT: _on_lost,
    UNRESOLVED_EVENT: _on_unresolved,
    PROGRESS_EVENT: _on_progress,
}
