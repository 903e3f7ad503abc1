"""Broadcasts to the workers (inspect, enable_events, controls) that can run many at once without deadlocking.

Celery's `app.control` takes a connection from the app's pool for the broadcast *and* a producer from its
producer pool, which lazily takes a second connection from the same pool. With more broadcasts in flight than
the pool holds (`broker_pool_limit`, 10 by default) — the inspector's eight plus the reconciler's three, say —
every one of them holds one connection and waits forever for its second. So each broadcast here brings its own
connection, outside the pool: it then needs at most one pooled connection (for publishing), never holds one
while waiting for another, and every call returns within its timeout.

Every broadcast lands in the control queue of every worker it names, and each worker answers it in its main
thread, between tasks. So broadcasts from this process are paced (`PACER`): at most `RATE` a second in bursts
of `BURST`. A script looping over Flower's control routes is slowed to that pace rather than refused; a caller
that would wait longer than `MAX_WAIT` seconds for its turn is refused (`TooManyBroadcasts`), and says so.
The monitor's own broadcasts (the inspector's eight commands, reconciliation's three, enable_events) fit in
one burst.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Celery

RATE = 20.0  # broadcasts a second, sustained
BURST = 40  # broadcasts at once after a quiet spell
MAX_WAIT = 5.0  # seconds a caller may wait for its turn before it is refused


class TooManyBroadcasts(RuntimeError):
    """This process sent broadcasts faster than its pace for longer than a caller may wait."""


class BroadcastPacer:
    """A token bucket shared by every thread of the process (pure but for the lock: the caller gives the clock)."""

    def __init__(self, rate: float = RATE, burst: int = BURST, max_wait: float = MAX_WAIT,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate, self.burst, self.max_wait = rate, burst, max_wait
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> None:
        """Wait for a turn (at most `max_wait` seconds), or raise TooManyBroadcasts."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            wait = (1.0 - self._tokens) / self.rate if self._tokens < 1.0 else 0.0
            if wait > self.max_wait:
                raise TooManyBroadcasts(
                    f"more than {self.rate:g} broadcasts a second to the workers from this process; "
                    f"try again in {wait:.0f} s")
            self._tokens -= 1.0  # taken now, even if the turn comes after the wait: later callers queue behind
        if wait > 0:
            self._sleep(wait)


PACER = BroadcastPacer()


def inspect(app: Celery, command: str, *args: Any, timeout: float, limit: int | None = None,
            destination: list[str] | None = None, **arguments: Any) -> dict[str, Any] | None:
    """`app.control.inspect().<command>(*args, **arguments)` on a connection of its own: `{hostname: reply}`."""
    PACER.take()
    with app.connection_for_write() as connection:
        inspector = app.control.inspect(timeout=timeout, limit=limit, destination=destination,
                                        connection=connection)
        return getattr(inspector, command)(*args, **arguments)


def broadcast(app: Celery, command: str, *, reply: bool = False, timeout: float = 1.0,
              destination: list[str] | None = None, arguments: dict[str, Any] | None = None,
              limit: int | None = None) -> list[dict[str, Any]] | None:
    """`app.control.broadcast(command, …)` on a connection of its own; the replies when `reply` is set."""
    PACER.take()
    with app.connection_for_write() as connection:
        return app.control.broadcast(command, arguments=arguments, destination=destination, reply=reply,
                                     timeout=timeout, limit=limit, connection=connection)
