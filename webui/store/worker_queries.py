"""Read queries for the workers pages: each worker's heartbeat row joined with its latest inspect replies."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from webui import fastjson
from webui.store.models import Worker, WorkerEvent, WorkerInspection

TRANSITIONS_SHOWN = 50


@dataclass
class WorkerView:
    """One worker as the pages show it: the `worker` row, plus what the last inspection said (if any)."""

    worker: Worker
    inspected_at: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    now: float = field(default_factory=time.time)

    @property
    def inspection_age(self) -> float | None:
        return None if self.inspected_at is None else max(0.0, self.now - self.inspected_at)

    @property
    def stats(self) -> dict[str, Any]:
        return _dict(self.data.get("stats"))

    @property
    def pool(self) -> dict[str, Any]:
        return _dict(self.stats.get("pool"))

    @property
    def pool_name(self) -> str:
        """`celery.concurrency.prefork:TaskPool` → `prefork`."""
        name = str(self.pool.get("implementation") or "—")
        return name.removeprefix("celery.concurrency.").split(":")[0]

    @property
    def concurrency(self) -> Any:
        return self.pool.get("max-concurrency")

    @property
    def queues(self) -> list[str]:
        return [str(q.get("name")) for q in _list(self.data.get("active_queues")) if isinstance(q, dict)]

    @property
    def loadavg(self) -> list[Any]:
        try:
            value = json.loads(self.worker.loadavg) if self.worker.loadavg else []
        except ValueError:
            return []
        return value if isinstance(value, list) else []

    @property
    def clock_skew(self) -> float | None:
        """The worker's clock minus the collector's, at the last heartbeat (timezones are not skew)."""
        w = self.worker
        if w.heartbeat_timestamp is None or w.last_heartbeat is None:
            return None
        return float(w.heartbeat_timestamp - w.last_heartbeat)

    def pairs(self, value: Any) -> list[tuple[str, str]]:
        """A reply's dict (conf, rusage, stats.total) as sorted (key, text) pairs; non-text values as JSON."""
        return sorted((str(k), v if isinstance(v, str) else fastjson.dumps(v)) for k, v in _dict(value).items())

    def replies(self, command: str) -> list[Any]:
        """A list reply (active, reserved, scheduled, revoked, registered), empty when not inspected yet."""
        return _list(self.data.get(command))


def list_workers() -> tuple[list[WorkerView], list[WorkerView]]:
    """Every worker, online ones first, each with its inspection; as (online, offline)."""
    inspections = {i.hostname: i for i in WorkerInspection.select()}
    now = time.time()
    views = [_view(w, inspections.get(w.hostname), now) for w in Worker.select().order_by(Worker.hostname)]
    return [v for v in views if v.worker.online], [v for v in views if not v.worker.online]


def worker_detail(hostname: str) -> WorkerView | None:
    worker = Worker.get_or_none(Worker.hostname == hostname)
    if worker is None:
        return None
    inspection = WorkerInspection.get_or_none(WorkerInspection.hostname == hostname)
    return _view(worker, inspection, time.time())


def transitions(worker: Worker, limit: int = TRANSITIONS_SHOWN) -> list[WorkerEvent]:
    """The worker's latest online/offline transitions, newest first."""
    return list(WorkerEvent.select().where(WorkerEvent.worker_id == worker.id)  # type: ignore[attr-defined]
                .order_by(WorkerEvent.at.desc(), WorkerEvent.id.desc()).limit(limit))  # type: ignore[attr-defined]


def _view(worker: Worker, inspection: WorkerInspection | None, now: float) -> WorkerView:
    if inspection is None:
        return WorkerView(worker, now=now)
    try:
        data = json.loads(inspection.data) if inspection.data else {}
    except ValueError:
        data = {}
    return WorkerView(worker, inspection.at, _dict(data), inspection.error, now)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
