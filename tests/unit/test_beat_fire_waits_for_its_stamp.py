"""A fire of a stamped entry whose task row the store had before its task-sent record: the worker's
task-received (its companion) reached the store first, and the stamp naming the entry rides on beat's
task-sent record. The watcher's scan waits for it (SENT_WAIT) instead of passing the row as no fire for good.
The real writer merges the records; the real watcher scans the store."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.store import close_database
from tests.unit.test_beat_publish_failed import agent, put
from webui.beat import watcher as beat_watcher
from webui.beat.fire_matching import WatchedEntry
from webui.beat.watcher import BeatWatcher
from webui.collector.writer import CollectorStats, Writer
from webui.privacy import Redactor
from webui.store.database import open_database
from webui.store.schema import upgrade

ENTRY = WatchedEntry(("app", "tick"), "app.tick", [], {})
DUE = time.time() - 1.0


@pytest.fixture
def store(database_url: str) -> Iterator[tuple[Any, Writer, BeatWatcher]]:
    db = open_database(database_url)
    upgrade(db)
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.05)
    writer.start()
    try:
        assert writer.leading.wait(5)
        watcher = BeatWatcher(None, db, Redactor(), None, ping=False, known_workers=set)  # type: ignore[arg-type]
        watcher.stamped.add(ENTRY.key)  # beat's companion stamped this entry's earlier fires
        yield db, writer, watcher
    finally:
        writer.stop()
        close_database(db)


def scan(db: Any, watcher: BeatWatcher, cursor: int, now: float | None = None) -> tuple[list, int]:
    with db.connection_context():
        return watcher._scan([ENTRY], cursor, time.time() if now is None else now)


def received(uuid: str) -> dict[str, Any]:
    return agent("task-received", uuid=uuid, name="app.tick", args="()", kwargs="{}", retries=0,
                 hostname="w1@host", timestamp=DUE + 0.01)


def sent(uuid: str) -> dict[str, Any]:
    return agent("task-sent", uuid=uuid, name="app.tick", args="()", kwargs="{}", retries=0, beat_entry="tick",
                 beat_due=DUE, timestamp=DUE + 0.005)


def test_a_row_seen_before_its_task_sent_record_is_matched_once_the_stamp_is_stored(store) -> None:
    db, writer, watcher = store
    put(writer, [received("fire-1")])
    fires, cursor = scan(db, watcher, 0)
    assert (fires, cursor) == ([], 0)  # held back, not passed
    put(writer, [sent("fire-1")])
    fires, cursor = scan(db, watcher, cursor)
    assert [(f.entry, f.task_uuid, f.due) for f in fires] == [(ENTRY.key, "fire-1", pytest.approx(DUE))]
    assert cursor == 1


def test_a_row_that_never_gets_its_task_sent_record_is_passed_after_the_wait(store) -> None:
    db, writer, watcher = store
    put(writer, [received("by-hand")])  # the same task sent by a client without the companion
    assert scan(db, watcher, 0) == ([], 0)
    fires, cursor = scan(db, watcher, 0, now=time.time() + beat_watcher.SENT_WAIT + 1)
    assert (fires, cursor) == ([], 1)  # unstamped: no fire of a stamped entry, and the scan goes on
