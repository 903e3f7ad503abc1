"""LOST from the companion's running-task marks: a worker's mark expired, so the tasks it ran died with it.

Each worker running the companion keeps `webui:agent:alive:<nodename>` alive in Redis, refreshed every 2 s
with a TTL of 6 s (webui.agent.presence). Every `CHECK_INTERVAL` the lost marker reads the marks of the workers
the store has STARTED tasks on (one SQL query, one MGET) and remembers the last one seen of each. A worker whose
mark was seen and is now gone, with nothing heard from it since (no event, no record: `worker.last_seen`), has
died: its STARTED tasks are lost, with that as the evidence. A SIGKILLed worker's tasks are LOST about 6–8 s
after its last refresh, where heartbeats alone take two offline windows and a detect pass (about 30 s).

Never judged:
- a worker whose mark this process never saw (no companion there, or a collector started after it died):
  the heartbeat rules of webui.detect.lost_marker decide;
- a worker whose last mark says it stopped cleanly (a warm shutdown finishes its tasks; same);
- a worker still heard from by events or records (its mark failed to reach Redis, not the worker);
- across a Redis restart (its `run_id` changed): every mark vanished at once; the marks seen before are
  forgotten, and each worker is judged again once its new mark has been seen.
A worker whose mark is present vouches for its tasks: the heartbeat rules do not mark them lost.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import redis
from peewee import Database

from webui.agent import HEARTBEAT_INTERVAL as MARK_INTERVAL  # the companion's refresh
from webui.agent.presence import key
from webui.collector.merge import LOST_EVENT
from webui.detect import phrasing

log = logging.getLogger(__name__)

CHECK_INTERVAL = 2.0  # seconds between two reads of the marks
MAX_WORKERS = 500  # marks read per check


@dataclass(frozen=True)
class Mark:
    at: float  # when the worker last refreshed it (the worker's clock)
    tasks: tuple[str, ...]
    stopped: bool


class PresenceWatch:
    """The marks last seen, by worker nodename (this process's memory: a restart starts it afresh)."""

    def __init__(self, url: str) -> None:
        self.client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.seen: dict[str, Mark] = {}
        self.alive: set[str] = set()  # workers whose mark was present at the last check
        self.run_id: str | None = None  # the Redis server the marks in `seen` were read from

    def close(self) -> None:
        self.client.close()

    def check(self, db: Database, now: float) -> list[dict[str, Any]]:
        """`task-lost` events for the STARTED tasks of workers whose mark expired (see the module docstring)."""
        self.alive = set()  # vouched for only by a read that succeeds: Redis down must not shield a dead worker
        if db.execute_sql("SELECT 1 FROM collector_gap WHERE ended_at IS NULL LIMIT 1").fetchone():
            return []  # the monitor is blind: "nothing heard since" proves nothing
        rows = db.execute_sql(
            f"SELECT DISTINCT worker FROM task WHERE state = {db.param} AND worker IS NOT NULL LIMIT {db.param}",
            ("STARTED", MAX_WORKERS)).fetchall()
        workers = sorted(row[0] for row in rows)
        if not workers:
            return []
        values = self.client.mget([key(worker) for worker in workers])
        run_id = self.client.info("server").get("run_id")
        if run_id != self.run_id:
            self.seen, self.run_id = {}, run_id  # a restarted Redis lost every mark: nothing to conclude
        gone = []
        for worker, value in zip(workers, values, strict=True):
            mark = _parse(value)
            if mark is not None:
                self.seen[worker] = mark
                if not mark.stopped:
                    self.alive.add(worker)
            elif worker in self.seen and not self.seen[worker].stopped:
                gone.append(worker)
        self.seen = {w: m for w, m in self.seen.items() if w in workers}
        return self._verdicts(db, gone, now) if gone else []

    def _verdicts(self, db: Database, gone: list[str], now: float) -> list[dict[str, Any]]:
        p = db.param
        rows = db.execute_sql(
            "SELECT t.uuid, t.worker, w.last_seen FROM task t JOIN worker w ON w.hostname = t.worker "
            f"WHERE t.state = {p} AND t.worker IN ({', '.join([p] * len(gone))}) ORDER BY t.id",
            ("STARTED", *gone)).fetchall()
        events = []
        for uuid, worker, last_seen in rows:
            mark = self.seen[worker]
            if last_seen is not None and last_seen > now - 2 * MARK_INTERVAL:
                continue  # still heard from (heartbeats every 2 s): the mark failed to reach Redis, not the worker
            listed = "it was listed as running" if uuid in mark.tasks else "it started after that refresh"
            events.append({
                "type": LOST_EVENT, "uuid": uuid, "hostname": worker, "timestamp": mark.at,
                "reason": (f"the companion's liveness mark stopped at {phrasing.moment(mark.at, now)} "
                           f"({listed}; the mark is refreshed every {MARK_INTERVAL:g} s) and nothing has been "
                           "heard from the worker since")})
        return events


def _parse(value: Any) -> Mark | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    stopped = data.get("stopped")
    at = stopped if stopped is not None else data.get("at")
    tasks = data.get("tasks") or []
    return Mark(float(at) if isinstance(at, int | float) else 0.0,
                tuple(t for t in tasks if isinstance(t, str)), stopped is not None)
