"""Exactly one active collector per database.

Every UI process (several gunicorn workers, several hosts) runs a collector candidate; the one holding the
lock leads, the others poll for it every `STANDBY_POLL` seconds and take over when the leader dies.

- SQLite: an exclusive `flock` on `<database file>.collector-lock`. The kernel releases it when the process
  dies, however it dies. (SQLite is single-host; the file must not be on NFS.)
- PostgreSQL: a session-level `pg_try_advisory_lock` taken **on the writer's own connection**. Should that
  connection drop, PostgreSQL releases the lock and the same broken connection can no longer commit, so a
  collector cut off from the database can never write beside its successor. After reconnecting, the writer
  must win the lock again before its next write (`holds`).
"""
from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

from peewee import Database, SqliteDatabase

STANDBY_POLL = 1.0
_PG_COLLECTOR_LOCK = 0x77656275_6901  # "webui" + 1


class LeaderLock(Protocol):
    def acquire(self) -> bool: ...
    def holds(self) -> bool: ...
    def release(self) -> None: ...


class FileLock:
    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holds(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class AdvisoryLock:
    """Must be used from the thread whose connection writes (peewee connections are per thread)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._held = False

    def acquire(self) -> bool:
        row = self.db.execute_sql("SELECT pg_try_advisory_lock(%s)", (_PG_COLLECTOR_LOCK,)).fetchone()
        self._held = bool(row[0])
        return self._held

    def holds(self) -> bool:
        """True when this very connection holds the lock (false after a reconnect until re-acquired)."""
        row = self.db.execute_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
            "AND granted AND objid = %s", (_PG_COLLECTOR_LOCK & 0xFFFFFFFF,)).fetchone()
        self._held = bool(row[0])
        return self._held

    def release(self) -> None:
        if self._held:
            try:
                self.db.execute_sql("SELECT pg_advisory_unlock(%s)", (_PG_COLLECTOR_LOCK,))
            finally:
                self._held = False


class NoLock:
    """An in-memory SQLite database has a single process by definition."""

    def acquire(self) -> bool:
        return True

    def holds(self) -> bool:
        return True

    def release(self) -> None:
        pass


def leader_lock(db: Database) -> LeaderLock:
    if isinstance(db, SqliteDatabase):
        if db.database == ":memory:":
            return NoLock()
        return FileLock(os.path.abspath(db.database) + ".collector-lock")
    return AdvisoryLock(db)


def sleep_while_leading(stop: threading.Event, alive: Callable[[], bool], seconds: float) -> bool:
    """For a leader's background loop: sleep `seconds`; False as soon as `stop` is set or the collector stops
    leading (checked every second)."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and alive():
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        stop.wait(min(left, 1.0))
    return False
