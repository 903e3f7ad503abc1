"""PostgreSQL's change feed for the live hubs: the writer NOTIFYs, every web process LISTENs.

- **Sending** (`notify`): the collector's writer calls it inside each batch's transaction that changed
  something pages show. PostgreSQL delivers a NOTIFY only when its transaction commits, and once per distinct
  payload per transaction, so a rolled-back batch announces nothing and a listener never reads a change before
  it is visible. The payload names the changed topics (`tasks,events`): a hint for logs and tools; the hubs
  still read the store's change markers to decide what changed.
- **Receiving** (`Listener`): one thread per web process holding one dedicated connection (not from the
  pool: a pooled connection is handed to requests, and a LISTEN must stay on its own session) in `LISTEN`,
  calling back within milliseconds of each commit. It connects only while `wanted()` (a socket is open),
  reconnects with capped backoff, and says once when it cannot listen and once when it listens again.

SQLite has no such feed (one host, and the store is a file): its hubs only poll.
"""
from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from peewee import Database, PostgresqlDatabase

log = logging.getLogger(__name__)

CHANNEL = "webui_live"
BACKOFF_START = 0.5
BACKOFF_CAP = 30.0
_WAKE_EVERY = 1.0  # seconds: how often a quiet listener looks up whether it should stop or close


def has_change_feed(db: Database) -> bool:
    return isinstance(db, PostgresqlDatabase)


def notify(db: Database, topics: Iterable[str]) -> None:
    """Announce `topics` on `CHANNEL` when the current transaction commits (PostgreSQL only; a no-op else)."""
    if has_change_feed(db):
        db.execute_sql("SELECT pg_notify(%s, %s)", (CHANNEL, ",".join(sorted(topics))))


def listen_params(db: Database) -> dict[str, Any]:
    """psycopg connection arguments for a LISTEN session on the same server and database as `db`."""
    params: dict[str, Any] = {"dbname": db.database, **db.connect_params}
    params.setdefault("application_name", "celery-webui live")
    params.setdefault("connect_timeout", 5)
    # An idle LISTEN session sends nothing: TCP keepalives notice a server that vanished without a word.
    for key, value in (("keepalives", 1), ("keepalives_idle", 30), ("keepalives_interval", 10),
                       ("keepalives_count", 3)):
        params.setdefault(key, value)
    return params


class Listener:
    """LISTENs on `CHANNEL` while `wanted()`, calling `on_change(payload)` for every notification.

    `on_change(None)` is called each time listening (re)starts: notifications sent while it was not listening
    are lost, so the caller should look at the store once.
    """

    def __init__(self, params: dict[str, Any], on_change: Callable[[str | None], None],
                 wanted: Callable[[], bool], *, backoff_start: float = BACKOFF_START,
                 backoff_cap: float = BACKOFF_CAP) -> None:
        self.params = params
        self.on_change = on_change
        self.wanted = wanted
        self.backoff_start, self.backoff_cap = backoff_start, backoff_cap
        self.listening = threading.Event()
        self._resume = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    @classmethod
    def for_database(cls, db: Database, on_change: Callable[[str | None], None],
                     wanted: Callable[[], bool]) -> Listener | None:
        return cls(listen_params(db), on_change, wanted) if has_change_feed(db) else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webui-live-listener", daemon=True)
        self._thread.start()

    def resume(self) -> None:
        """`wanted()` may have become true: connect now rather than at the next look."""
        self._resume.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        self._resume.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.backoff_start
        while not self._stopped.is_set():
            if not self.wanted():
                self._resume.wait(_WAKE_EVERY)
                self._resume.clear()
                continue
            try:
                self._listen()
                delay = self.backoff_start  # it listened, then was no longer wanted: start afresh next time
            except (psycopg.Error, OSError) as exc:
                self.listening.clear()
                if not self._failing:
                    log.warning("live updates cannot LISTEN on PostgreSQL (%s); polling the store until they "
                                "can", exc)
                    self._failing = True
                self._stopped.wait(random.uniform(delay / 2, delay))
                delay = min(delay * 2, self.backoff_cap)

    def _listen(self) -> None:
        with psycopg.connect(autocommit=True, **self.params) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            if self._failing:
                log.info("live updates listen on PostgreSQL again")
                self._failing = False
            self.on_change(None)
            try:
                while not self._stopped.is_set() and self.wanted():
                    for notification in conn.notifies(timeout=_WAKE_EVERY):
                        self.on_change(notification.payload)
            finally:
                self.listening.clear()
