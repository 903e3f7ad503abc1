"""A fire of a stamped entry whose task row the store had before its task-sent record: the worker's
task-received (its companion) reached the store first, and the stamp naming the entry rides on beat's
task-sent record. The watcher's scan waits for it (SENT_WAIT) instead of passing the row as no fire for good.
And a fire stored before its stamp (Celery's own task-sent event came first) gets the stamp's due time once
the companion's record comes. The real writer merges the records; the real watcher scans the store."""
from __future__ import annotations

import time
from typing import Any

import pytest

from tests.unit.test_beat_publish_failed import agent, beat_pass, beat_writer_fixture, fire_rows, put  # noqa: F401
from webui.beat import watcher as beat_watcher
from webui.beat.fire_matching import WatchedEntry
from webui.beat.watcher import BeatWatcher, FoundFire
from webui.collector.writer import Writer
from webui.privacy import Redactor

ENTRY = WatchedEntry(("app", "tick"), "app.tick", [], {})
DUE = time.time() - 1.0


@pytest.fixture
def store(beat_writer: tuple[Any, Writer]) -> tuple[Any, Writer, BeatWatcher]:
    """test_beat_publish_failed's writer (the entry read from its source), and a watcher on its store."""
    db, running = beat_writer
    watcher = BeatWatcher(None, db, Redactor(), None, ping=False, known_workers=set)  # type: ignore[arg-type]
    watcher.stamped.add(ENTRY.key)  # beat's companion stamped this entry's earlier fires
    return db, running, watcher


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


def test_the_first_pass_backfill_waits_for_the_stamp_too(store) -> None:
    """The watcher's first passes on an empty store backfill (cursor 0): the first fire comes in that way."""
    db, writer, watcher = store
    put(writer, [received("first")])
    with db.connection_context():
        assert watcher._backfill([ENTRY]) == ([], 0)
    put(writer, [sent("first")])
    with db.connection_context():
        fires, cursor = watcher._backfill([ENTRY])
    assert [(f.task_uuid, f.due) for f in fires] == [("first", pytest.approx(DUE))] and cursor == 1


def test_a_fire_stored_before_its_stamp_gets_the_stamps_due_time(store) -> None:
    db, writer, _watcher = store
    beat_pass(writer, [FoundFire(ENTRY.key, "evented", DUE + 0.005, "beat-host:42", None)], at=time.time())
    assert [(r[0], r[3]) for r in fire_rows(db)] == [("evented", None)]
    put(writer, [sent("evented"), sent("not-a-stored-fire")])
    assert [(r[0], r[3]) for r in fire_rows(db)] == [("evented", pytest.approx(DUE))]


def test_a_fire_found_before_its_stamp_but_written_after_it_takes_the_stored_stamp(store) -> None:
    """The watcher read the row unstamped; the writer committed the stamp before the watcher's pass."""
    db, writer, _watcher = store
    put(writer, [received("raced"), sent("raced")])
    beat_pass(writer, [FoundFire(ENTRY.key, "raced", DUE + 0.005, "beat-host:42", None)], at=time.time())
    assert [(r[0], r[3]) for r in fire_rows(db)] == [("raced", pytest.approx(DUE))]
