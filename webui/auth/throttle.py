"""Slow down password guessing: failed logins per address and per user name, counted in the database.

In the database so the limit holds across gunicorn processes and hosts. Past `max_failures` in the window,
further tries of that address or name are refused (429) until the oldest failure leaves the window; a
success does not erase failures (a guesser who knows one password must not reset the counter).
"""
from __future__ import annotations

import time

from webui.store.models import AuthFailure

WINDOW = 15 * 60.0


def keys(address: str | None, username: str) -> list[str]:
    return [f"addr:{address or 'unknown'}", f"user:{username.lower()[:300]}"]


def retry_after(address: str | None, username: str, max_failures: int, now: float | None = None) -> float:
    """Seconds until another try is allowed (0: now)."""
    now = time.time() if now is None else now
    wait = 0.0
    for key in keys(address, username):
        recent = [row.at for row in AuthFailure.select(AuthFailure.at)
                  .where((AuthFailure.key == key) & (AuthFailure.at > now - WINDOW))
                  .order_by(AuthFailure.at.desc()).limit(max_failures)]
        if len(recent) >= max_failures:
            wait = max(wait, recent[-1] + WINDOW - now)
    return wait


def record_failure(address: str | None, username: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    AuthFailure.insert_many([{"key": k, "at": now} for k in keys(address, username)]).execute()
    # Keep the table small: failures older than the window count for nothing.
    AuthFailure.delete().where(AuthFailure.at < now - WINDOW).execute()
