"""Running-task presence: one short-lived Redis key per worker listing the tasks it is running.

The worker's main process refreshes `webui:agent:alive:<nodename>` every heartbeat (2 s) with a TTL of three
heartbeats: `{"at": <time>, "tasks": [<task id>, …]}`. One write per worker per heartbeat, however many tasks
run and for however long. A SIGKILLed or OOM-killed worker stops refreshing it, Redis lets it expire, and the
collector (webui.detect.presence) confirms its running tasks LOST from the missing mark within seconds.

The running tasks are Celery's own `celery.worker.state.active_requests`, kept in the main process for every
pool (prefork included: a request becomes active when its pool child accepts it). A clean shutdown writes
`{"stopped": <time>}` instead, kept a minute: the tasks a warm shutdown finishes still report, and the
heartbeat-and-shutdown rules judge any that do not.
"""
from __future__ import annotations

import json
import time
from typing import Any

import redis

KEY_PREFIX = "webui:agent:alive:"
INTERVALS_KEPT = 3  # a mark outlives this many missed refreshes, then expires
STOPPED_TTL = 60.0  # seconds a clean shutdown's mark is kept
SOCKET_TIMEOUT = 1.0


def key(hostname: str) -> str:
    return KEY_PREFIX + hostname


def running_task_ids() -> list[str]:
    """The ids of the tasks this worker runs now (the main process's view)."""
    from celery.worker import state

    for _ in range(3):  # the consumer thread may change the set while it is copied
        try:
            return sorted({request.id for request in list(state.active_requests)})
        except RuntimeError:
            continue
    return []


class Presence:
    """Writes one worker's mark; never raises (a failed write is the publisher's kind of drop)."""

    def __init__(self, url: str, hostname: str, interval: float) -> None:
        self.hostname = hostname
        self.ttl_ms = int(interval * INTERVALS_KEPT * 1000)
        self.client: Any = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT,
                                                socket_connect_timeout=SOCKET_TIMEOUT)
        self.failed = 0

    def refresh(self) -> None:
        self._set({"at": time.time(), "tasks": running_task_ids()}, self.ttl_ms)

    def stopped(self) -> None:
        self._set({"stopped": time.time()}, int(STOPPED_TTL * 1000))

    def _set(self, value: dict[str, Any], ttl_ms: int) -> None:
        try:
            self.client.set(key(self.hostname), json.dumps(value), px=ttl_ms)
        except Exception:  # noqa: BLE001 - Redis slow or down: the worker goes on, the mark just lapses
            self.failed += 1
