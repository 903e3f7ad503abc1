"""Open the database named by a URL: SQLite by default, PostgreSQL for scale.

SQLite runs in WAL mode with `synchronous=NORMAL` (a committed transaction survives a SIGKILL of this
process; only an OS crash or power loss can take the last commits), a busy timeout so readers and the single
writer wait for each other instead of failing, and `BEGIN IMMEDIATE` so a write transaction takes the lock up
front rather than failing half-way. A few closed SQLite connections are parked for the next request
(`ParkingSqliteDatabase`). PostgreSQL uses psycopg 3 through a connection pool.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

from peewee import Database, DatabaseProxy, SqliteDatabase, _NoopLock
from playhouse.pool import PoolConnection, PooledDatabase, PooledPostgresqlDatabase, PooledSqliteDatabase

from webui.settings import mask_url_password

# Models are bound to this proxy; `bind_models` points it at the opened database (one per process).
database_proxy = DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "busy_timeout": 10_000,
    # 8 MB of page cache per connection. A request's connection is parked between requests (at most
    # `SQLITE_PARKED` of them, for `SQLITE_STALE_AFTER`); a background loop's (beat watcher, detectors,
    # inspector…) lives as long as the process, each with a cache of its own: at 32 MB those filled to 70 MB of a
    # UI process over a 1M-task store. The writer, whose index inserts do reuse hot pages, takes
    # `WRITER_CACHE_KIB` on its own connection (`use_writer_cache`).
    "cache_size": -8_000,
    "foreign_keys": 0,
    "temp_store": "memory",
}


class DatabaseURLError(ValueError):
    """The database URL cannot be used; the message says why."""


def open_database(url: str) -> Database:
    """Return an unconnected peewee database for `url` (`sqlite:///path` or `postgresql://…`)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return _open_sqlite(parsed.path, url)
    if parsed.scheme in ("postgresql", "postgres"):
        return _open_postgresql(parsed)
    raise DatabaseURLError(
        f"unsupported database URL {mask_url_password(url)!r}: use sqlite:///PATH or postgresql://…")


def _open_sqlite(path: str, url: str) -> SqliteDatabase:
    # sqlite:////abs/path -> path "//abs/path"; sqlite:///rel/path -> "/rel/path" (relative to cwd).
    if path.startswith("//"):
        path = path[1:]
    elif path.startswith("/"):
        path = path[1:]
    if not path:
        raise DatabaseURLError(f"no file path in {url!r}: use sqlite:///PATH")
    path = unquote(path)
    if path != ":memory:":
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
    return ParkingSqliteDatabase(path, pragmas=SQLITE_PRAGMAS, lock_type="IMMEDIATE", check_same_thread=False,
                                 max_connections=None, stale_timeout=SQLITE_STALE_AFTER)


# Closed SQLite connections parked for the next request, at most this many at a time. Opening one (the file,
# the WAL index, seven pragmas) was a fifth of a request's CPU under load; each parked connection keeps its page
# cache (up to `cache_size`), so enough cover the requests a process runs at once and the rest close.
SQLITE_PARKED = 8
SQLITE_STALE_AFTER = 300  # seconds: a connection older than this is closed, not parked, so its cache is given back


class ParkingSqliteDatabase(PooledSqliteDatabase):
    """SQLite whose `close()` parks the connection for the next `connect()` (of any thread), up to
    `SQLITE_PARKED`. A connection is parked only outside a transaction (peewee's pool rolls back one left open).

    Connections are opened and closed outside any lock. peewee holds one lock per database around every
    thread's `connect()` and `close()`, and its pool another around the opening and closing of the driver's
    connection: under load (bench/load.py) a third of a UI process's request threads were waiting there, for
    one another's `sqlite3.connect()` and pragmas. What those locks guard is each thread's own (`_state`, a
    thread-local) or the pool's lists, which the pool's lock still guards, only no longer across the opening."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = _NoopLock()  # see the class's docstring
        self.never_parked: set[int] = set()  # ids of open connections to close, not park (no weakref to them)
        # Until one connection has opened, openings wait for one another: the first turns a new file to WAL,
        # which takes the file's lock, and a second opening at that moment gets "database is locked".
        self._first_open = threading.Lock()
        self._opened = False

    def _connect(self) -> sqlite3.Connection:
        with self._pool_lock:
            if self._connections:
                return super()._connect()  # a parked one (or, were they all stale, a new one: rare)
        if self._opened:
            conn = SqliteDatabase._connect(self)  # type: ignore[attr-defined]
        else:
            with self._first_open:
                conn = SqliteDatabase._connect(self)  # type: ignore[attr-defined]
                self._opened = True
        now = time.time()
        with self._pool_lock:
            self._in_use[self.conn_key(conn)] = PoolConnection(now, conn, now)
        return conn

    def _close(self, conn: sqlite3.Connection, close_conn: bool = False) -> None:
        with self._pool_lock:
            if id(conn) in self.never_parked:
                self.never_parked.discard(id(conn))
                close_conn = True
            elif len(self._connections) >= SQLITE_PARKED:
                close_conn = True
            if not close_conn:
                super()._close(conn, close_conn)  # parks it, unless it is stale
                return
            self._in_use.pop(self.conn_key(conn), None)
        self._close_raw(conn)


def _open_postgresql(parsed) -> PooledPostgresqlDatabase:
    name = unquote(parsed.path.lstrip("/"))
    if not name:
        raise DatabaseURLError("no database name in the PostgreSQL URL")
    options = dict(parse_qsl(parsed.query))
    kwargs: dict[str, object] = {
        "host": parsed.hostname or None,
        "port": parsed.port or None,
        "user": unquote(parsed.username) if parsed.username else None,
        "password": unquote(parsed.password) if parsed.password else None,
        **options,
    }
    max_connections = int(kwargs.pop("max_connections", 32))  # type: ignore[call-overload]
    return PooledPostgresqlDatabase(
        name,
        prefer_psycopg3=True,
        max_connections=max_connections,
        stale_timeout=300,
        timeout=10,
        **{k: v for k, v in kwargs.items() if v is not None},
    )


def is_sqlite(db: Database) -> bool:
    return isinstance(db, SqliteDatabase)


WRITER_CACHE_KIB = 32_000


def use_writer_cache(db: Database) -> None:
    """Give the calling thread's SQLite connection the writer's larger page cache (nothing on PostgreSQL); it is
    closed, not parked, when the writer lets it go, so no request inherits the big cache."""
    if is_sqlite(db):
        db.execute_sql(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        if isinstance(db, ParkingSqliteDatabase):
            db.never_parked.add(id(db.connection()))


def bind_models(db: Database) -> None:
    database_proxy.initialize(db)



def discard_connection(db: Database | DatabaseProxy) -> None:
    """Drop the calling thread's connection after an error, whatever state the error left it in, so the next
    query opens a fresh one.

    Needed because a connection that died inside a transaction cannot be rolled back: peewee then keeps the
    transaction on its stack, refuses `close()` ("transaction is open"), and every later `atomic()` of this
    thread becomes a savepoint of that dead transaction — writes that never commit. A pooled connection is
    closed for good, never handed back to the pool. `connection_context()` blocks still open in this thread
    stay balanced: their exit finds the connection closed, as after any close.
    """
    target = db.obj if isinstance(db, DatabaseProxy) else db
    if target is None:
        return
    state = target._state  # type: ignore[union-attr]
    open_contexts = list(state.ctx)
    state.transactions.clear()
    try:
        if isinstance(target, PooledDatabase):
            target.manual_close()
        else:
            target.close()
    except Exception:  # noqa: BLE001 - the connection is being thrown away because it is broken
        state.reset()
    finally:
        state.ctx = open_contexts


def reopen_connection(db: Database) -> None:
    """Connect this thread again (after `discard_connection`). peewee's `connect()` forgets the thread's open
    `connection_context()` blocks, whose exit would then fail ("pop from empty list"): they are kept."""
    state = db._state  # type: ignore[attr-defined]
    open_contexts = list(state.ctx)
    try:
        db.connect(reuse_if_open=True)
    finally:
        state.ctx = open_contexts
