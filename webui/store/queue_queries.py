"""Read queries for the queues pages: each queue's latest sample, its depth history, and who consumes it."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from webui.collector.queue_sampler import consumers_by_queue
from webui.store.models import QueueSample, Worker, WorkerInspection

HOUR = 3600.0
MAX_POINTS = 720  # a chart needs no more points than it has pixels
_SAMPLE_ID: Any = QueueSample._meta.primary_key  # peewee adds the implicit `id` at run time, unseen by mypy


@dataclass
class QueueView:
    """One queue as the pages show it: the latest sample, the depths in the window, the consuming workers."""

    name: str
    latest: QueueSample
    points: list[tuple[float, int | None]]  # (at, depth), oldest first
    workers: list[str] = field(default_factory=list)  # online workers whose active_queues list it
    now: float = field(default_factory=time.time)

    @property
    def detail(self) -> dict[str, Any]:
        try:
            value = json.loads(self.latest.detail) if self.latest.detail else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def transport(self) -> str:
        return str(self.detail.get("transport") or "")

    @property
    def priorities(self) -> list[tuple[str, int]]:
        """Redis: (priority step, messages) of every priority list, when the transport has more than one."""
        value = self.detail.get("priorities")
        if not isinstance(value, dict):
            return []
        return sorted(((str(k), int(v)) for k, v in value.items() if isinstance(v, int)), key=lambda kv: int(kv[0]))

    @property
    def sampled_age(self) -> float:
        return max(0.0, self.now - self.latest.at)

    @property
    def depth_range(self) -> tuple[int | None, int | None]:
        return depth_range(self.points)

    @property
    def consumer_count(self) -> int | None:
        """The broker's count where it has one (RabbitMQ); else the workers that said they consume it."""
        if self.transport == "amqp" and self.latest.consumers is not None:
            return int(self.latest.consumers)
        return len(self.workers)

    @property
    def unattended(self) -> bool:
        """Messages are waiting and nothing consumes them."""
        return bool(self.latest.depth) and not self.consumer_count and not self.workers


def depth_range(points: list[tuple[float, int | None]]) -> tuple[int | None, int | None]:
    """The smallest and largest known depth among `points`; (None, None) when none is known."""
    depths = [d for _, d in points if d is not None]
    return (min(depths), max(depths)) if depths else (None, None)


def thin(points: list[tuple[float, int | None]], limit: int = MAX_POINTS) -> list[tuple[float, int | None]]:
    """At most about `limit` points, keeping each stretch's largest depth (a spike must not vanish)."""
    if len(points) <= limit:
        return points
    size = -(-len(points) // limit)
    thinned = []
    for i in range(0, len(points), size):
        chunk = points[i:i + size]
        known = [p for p in chunk if p[1] is not None]
        thinned.append(max(known, key=lambda p: p[1] or 0) if known else chunk[0])
    return thinned


def consumers(online_only: bool = True) -> dict[str, list[str]]:
    """`{queue: [hostname, …]}` from the workers' last `active_queues` replies (online workers only)."""
    query = WorkerInspection.select(WorkerInspection.hostname, WorkerInspection.data)
    if online_only:
        query = query.join(Worker, on=(Worker.hostname == WorkerInspection.hostname)).where(Worker.online == True)  # noqa: E712
    return consumers_by_queue(query.tuples())  # type: ignore[arg-type]


def queue_overview(window: float = HOUR, now: float | None = None) -> list[QueueView]:
    """Every queue sampled within `window` seconds: its latest sample and its depths, by name.

    The window's samples come as (at, depth) along the `at` index (migration 0014); only each queue's latest
    sample is read whole.
    """
    now = time.time() if now is None else now
    db = QueueSample._meta.database  # a plain cursor: thousands of (at, depth) rows, no model objects
    rows = db.execute_sql(f"SELECT id, queue, at, depth FROM queue_sample WHERE at >= {db.param} ORDER BY at",
                          (now - window,)).fetchall()
    points: dict[str, list[tuple[float, int | None]]] = {}
    newest: dict[str, int] = {}
    for row_id, queue, at, depth in rows:
        points.setdefault(queue, []).append((at, depth))
        newest[queue] = row_id
    if not points:
        return []
    latest = {s.queue: s for s in QueueSample.select().where(_SAMPLE_ID.in_(list(newest.values())))}
    workers = consumers()
    return [QueueView(name, latest[name], thin(points[name]), workers.get(name, []), now) for name in sorted(points)]


def queue_detail(name: str, window: float = HOUR, now: float | None = None) -> QueueView | None:
    """One queue's latest sample (however old) and its depths within `window`; None if never sampled."""
    now = time.time() if now is None else now
    latest = (QueueSample.select().where(QueueSample.queue == name)
              .order_by(QueueSample.at.desc()).first())
    if latest is None:
        return None
    points: Any = (QueueSample.select(QueueSample.at, QueueSample.depth)
              .where((QueueSample.queue == name) & (QueueSample.at >= now - window))
              .order_by(QueueSample.at).tuples())
    return QueueView(name, latest, thin(list(points)), consumers().get(name, []), now)
