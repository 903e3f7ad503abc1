"""SQLite connections are parked between requests (a few), and opened without waiting for other threads'."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from peewee import SqliteDatabase

from webui.store import database as database_module
from webui.store.database import SQLITE_PARKED, open_database


def run_threads(n: int, work) -> None:
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=guarded) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors


def test_connections_are_reused_and_at_most_so_many_parked(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    with db.connection_context():
        first = db.connection()
    with db.connection_context():
        assert db.connection() is first  # parked, then taken again
    everyone_in = threading.Barrier(SQLITE_PARKED + 4)

    def request() -> None:
        with db.connection_context():
            db.execute_sql("SELECT 1")
            everyone_in.wait(10)  # all hold a connection at once
    run_threads(SQLITE_PARKED + 4, request)
    assert len(db._connections) == SQLITE_PARKED and not db._in_use
    db.close_all()


def test_a_thread_opening_a_connection_does_not_wait_for_another_thread_opening_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # peewee serialises connect() behind one lock per database: every request waited for the others' opening.
    db = open_database(f"sqlite:///{tmp_path / 'o.sqlite3'}")
    with db.connection_context():  # the file exists and is in WAL mode, as the schema's upgrade leaves it
        db.execute_sql("SELECT 1")
    db.close_all()  # nothing parked: both threads below open a connection
    opening, most = [0], [0]
    lock = threading.Lock()
    both_opening = threading.Barrier(2)
    real_connect = SqliteDatabase._connect

    def slow_connect(self):
        with lock:
            opening[0] += 1
            most[0] = max(most[0], opening[0])
        try:
            both_opening.wait(5)  # raises BrokenBarrierError if the other thread cannot get here meanwhile
            return real_connect(self)
        finally:
            with lock:
                opening[0] -= 1

    monkeypatch.setattr(database_module.SqliteDatabase, "_connect", slow_connect)

    def request() -> None:
        with db.connection_context():
            db.execute_sql("SELECT 1")
    run_threads(2, request)
    assert most[0] == 2
    db.close_all()


def test_threads_opening_a_new_file_at_once_all_get_a_connection(tmp_path: Path) -> None:
    # The first opening turns the file to WAL; one opening at the same moment would find it locked.
    db = open_database(f"sqlite:///{tmp_path / 'n.sqlite3'}")
    start = threading.Barrier(6)

    def request() -> None:
        start.wait(10)
        with db.connection_context():
            assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    run_threads(6, request)
    db.close_all()
