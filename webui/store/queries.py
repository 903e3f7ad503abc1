"""Read queries for pages and probes. Each returns plain data; none writes (except the health probe)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from peewee import fn

from webui.collector.merge import ALL_STATES
from webui.store.models import CollectorGap, CollectorStatus, Task, Worker

HEARTBEAT_STALE_AFTER = 10.0  # seconds: the leading collector writes its status every second


def task_counts_by_state() -> dict[str, int]:
    counts = {state: 0 for state in ALL_STATES}
    query = Task.select(Task.state, fn.COUNT(Task.id)).group_by(Task.state).tuples()
    rows: list[tuple[str, int]] = list(query)  # type: ignore[arg-type]  # peewee's stubs miss .tuples()
    counts.update(rows)
    return counts


def workers_by_status() -> tuple[list[Worker], list[Worker]]:
    workers = list(Worker.select().order_by(Worker.hostname))
    return [w for w in workers if w.online], [w for w in workers if not w.online]


def collector_status() -> CollectorStatus | None:
    return CollectorStatus.get_or_none(CollectorStatus.id == 1)  # type: ignore[attr-defined]


def recent_gaps(limit: int = 5) -> list[CollectorGap]:
    return list(CollectorGap.select().order_by(CollectorGap.started_at.desc()).limit(limit))


@dataclass
class Health:
    ok: bool
    reasons: list[str]


def health(now: float | None = None) -> Health:
    """Healthy only when the database takes a write and a collector is connected and heartbeating."""
    now = time.time() if now is None else now
    reasons = []
    db = Task._meta.database
    try:
        with db.atomic():
            db.execute_sql("UPDATE collector_status SET heartbeat_at = heartbeat_at WHERE id = 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not writable", with the reason
        return Health(False, [f"database not writable: {type(exc).__name__}: {exc}"])
    status = collector_status()
    if status is None:
        reasons.append("no collector has run against this database yet")
    elif now - status.heartbeat_at > HEARTBEAT_STALE_AFTER:
        reasons.append(f"collector not running: last heartbeat {now - status.heartbeat_at:.0f}s ago")
    elif not status.connected:
        reasons.append(f"collector not connected to the broker: {status.last_error or 'connecting'}")
    return Health(not reasons, reasons)
