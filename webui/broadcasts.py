"""Broadcasts to the workers (inspect, enable_events, controls) that can run many at once without deadlocking.

Celery's `app.control` takes a connection from the app's pool for the broadcast *and* a producer from its
producer pool, which lazily takes a second connection from the same pool. With more broadcasts in flight than
the pool holds (`broker_pool_limit`, 10 by default) — the inspector's eight plus the reconciler's three, say —
every one of them holds one connection and waits forever for its second. So each broadcast here brings its own
connection, outside the pool: it then needs at most one pooled connection (for publishing), never holds one
while waiting for another, and every call returns within its timeout.
"""
from __future__ import annotations

from typing import Any

from celery import Celery


def inspect(app: Celery, command: str, *args: Any, timeout: float, limit: int | None = None,
            destination: list[str] | None = None, **arguments: Any) -> dict[str, Any] | None:
    """`app.control.inspect().<command>(*args, **arguments)` on a connection of its own: `{hostname: reply}`."""
    with app.connection_for_write() as connection:
        inspector = app.control.inspect(timeout=timeout, limit=limit, destination=destination,
                                        connection=connection)
        return getattr(inspector, command)(*args, **arguments)


def broadcast(app: Celery, command: str, *, reply: bool = False, timeout: float = 1.0,
              destination: list[str] | None = None, arguments: dict[str, Any] | None = None,
              limit: int | None = None) -> list[dict[str, Any]] | None:
    """`app.control.broadcast(command, …)` on a connection of its own; the replies when `reply` is set."""
    with app.connection_for_write() as connection:
        return app.control.broadcast(command, arguments=arguments, destination=destination, reply=reply,
                                     timeout=timeout, limit=limit, connection=connection)
