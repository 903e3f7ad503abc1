"""Events delivered twice: keep what the store does not hold yet, skip the copies.

The durable event queue (webui.collector.event_queue) acknowledges a message only once the writer committed its
events, so a message can come again after its events were stored: the collector was SIGKILLed, or lost the broker
connection, between the commit and the acknowledgement. RabbitMQ marks such messages `redelivered`, and the writer
passes their events through `fresh_items` before merging. Without it a repeated `task-started` would count as a
second execution, a repeated `task-succeeded` twice in the rollups, and every copy would lengthen the event log.

What identifies an event:
- A task event: (uuid, type, timestamp, hostname, clock), as stored in `task_event`. The clock is the sender's
  Lamport clock, moved on for every event it sends, so two different events never share all five.
- A worker event: worker state is "the latest wins", so a repeated one matters only through the transition it
  could cause (an old heartbeat bringing an offline worker back). One that is not newer than the heartbeat the
  worker row holds (a worker-offline included: the worker may be back since), or a `worker-offline` for a worker
  already offline, is skipped.

Only redelivered messages are checked: at most a prefetch window of them after each reconnection, so the lookup
costs nothing in the steady state.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from webui.collector.decode import MalformedEvent, normalise
from webui.collector.workers import WorkerState

REDELIVERED = "redelivered"  # the writer's inbox kind for the events of a redelivered message

EventKey = tuple[Any, ...]
Item = tuple[str, Any, float]


def task_event_key(event: dict[str, Any]) -> EventKey:
    """The identity of a normalised task event, in the column types of `task_event`."""
    ts, clock = event.get("timestamp"), event.get("clock")
    return (event["uuid"], event["type"], float(ts) if isinstance(ts, int | float) and type(ts) is not bool else None,
            event.get("hostname"), clock if type(clock) is int else None)


def redelivered_uuids(items: Iterable[Item]) -> list[str]:
    """The task ids named in the batch's redelivered messages: the tasks whose stored events to look up."""
    uuids = {event.get("uuid") for kind, events, _ in items if kind == REDELIVERED
             for event in events if isinstance(event, dict)}
    return [u for u in uuids if isinstance(u, str)]


def fresh_items(items: list[Item], stored: set[EventKey], workers: dict[str, WorkerState],
                on_malformed: Callable[[MalformedEvent], None] | None = None) -> tuple[list[Item], int]:
    """The batch with each redelivered message reduced to the events not stored yet (as plain "events" items).

    `stored`: `task_event_key`s already in the database for the uuids of `redelivered_uuids`. Copies inside the
    batch are caught too: a message handed over before a reconnection and again after it. Returns the new items
    and how many events were skipped.
    """
    seen: set[EventKey] = set(stored)
    fresh: list[Item] = []
    skipped = 0
    for kind, payload, received in items:
        if kind == "events":
            for event in payload:
                if isinstance(event, dict) and isinstance(event.get("uuid"), str) \
                        and str(event.get("type", "")).startswith("task-"):
                    seen.add(task_event_key(event))
            fresh.append((kind, payload, received))
            continue
        if kind != REDELIVERED:
            fresh.append((kind, payload, received))
            continue
        kept = []
        for raw in payload:
            try:
                event = normalise(raw, received)  # the key must be what would be stored (writer re-checks: no-op)
            except MalformedEvent:
                kept.append(raw)  # counted as malformed by the writer, like any other
                continue
            if _is_copy(event, seen, workers):
                skipped += 1
            else:
                kept.append(event)
        fresh.append(("events", kept, received))
    return fresh, skipped


def _is_copy(event: dict[str, Any], seen: set[EventKey], workers: dict[str, WorkerState]) -> bool:
    etype = event["type"]
    if etype.startswith("task-"):
        key = task_event_key(event)
        if key in seen:
            return True
        seen.add(key)
        return False
    if etype.startswith("worker-"):
        worker = workers.get(event.get("hostname") or "")
        if worker is None:
            return False
        if etype == "worker-offline" and not worker.online:
            return True
        ts, known = event.get("timestamp"), worker.heartbeat_timestamp
        return isinstance(ts, float) and isinstance(known, float) and ts <= known
    return False
