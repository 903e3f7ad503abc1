"""The companion's `beat-publish-failed` records are stored by the writer as failed attempts of their entry: once
each (a record the stream delivers again included), not counted as a fire when the watcher later finds the
task-sent record beat made before the publish raised, and shown on the board, the API's shape and the alert."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.store import close_database
from tests.support.waiting import wait_for
from webui.beat import board as beat_board
from webui.beat import status as beat_status
from webui.beat.entries import ScheduleEntry
from webui.beat.watcher import BeatPass, FoundFire
from webui.collector.writer import CollectorStats, Writer
from webui.detect.findings import DetectContext
from webui.detect.registry import all_detectors
from webui.privacy import Redactor
from webui.settings import default_settings
from webui.store.database import bind_models, open_database
from webui.store.schema import upgrade

NOW = time.time()
DUE = NOW - 100.0  # a minute entry whose slot passed 100 s ago, the one after it 40 s ago: missed
ENTRY = ScheduleEntry("app", "tick", "app.tick", {"kind": "interval", "seconds": 60.0, "relative": False})
REFUSED = "OperationalError('Error 111 connecting to 127.0.0.1:6379. Connection refused.')"


def agent(etype: str, **fields: Any) -> dict[str, Any]:
    return {"type": etype, "hostname": "gen1@beat-host", "timestamp": DUE + 0.2, "utcoffset": 0, "pid": 42,
            "clock": None, "source": "agent", **fields}


SENT = agent("task-sent", uuid="t-failed", name="app.tick", args="()", kwargs="{}", retries=0,
             beat_entry="tick", beat_due=DUE)
FAILED = agent("beat-publish-failed", uuid="t-failed", name="app.tick", beat_entry="tick", beat_due=DUE,
               exception=REFUSED)
NO_TASK = {**agent("beat-publish-failed", uuid=None, name="app.tick", beat_entry="tick", beat_due=DUE - 60,
                   exception="EncodeError('not JSON serializable')"), "timestamp": DUE - 59.9}


@pytest.fixture(name="beat_writer")
def beat_writer_fixture(database_url: str) -> Iterator[tuple[Any, Writer]]:
    """A running writer on a fresh store that has read ENTRY from its source (test_beat_fire_waits_for_its_stamp
    uses it too)."""
    db = open_database(database_url)
    upgrade(db)
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.05)
    writer.start()
    try:
        assert writer.leading.wait(5)
        bind_models(db)
        beat_pass(writer, [])  # the watcher has read the entry from its source
        yield db, writer
    finally:
        writer.stop()
        close_database(db)  # the writer's and the test's pooled connections too


def beat_pass(writer: Writer, fires: list[FoundFire], at: float | None = None) -> None:
    at = at or NOW - 200
    writer.put_beat_pass(BeatPass(at, [ENTRY], {"app"}, {}, fires=fires))

    def committed() -> bool:
        with writer.db.connection_context():
            row = writer.db.execute_sql("SELECT checked_at FROM beat_watch WHERE id = 1").fetchone()
        return bool(row) and row[0] == at
    wait_for(committed, message="the beat pass was not committed")


def put(writer: Writer, records: list[dict[str, Any]], redelivered: bool = False) -> None:
    done: list[bool] = []
    writer.put_events([dict(r) for r in records], time.time(), redelivered=redelivered,
                      receipt=lambda: done.append(True))
    wait_for(lambda: done, message="the records were not committed")


def fire_rows(db: Any) -> list[tuple]:
    with db.connection_context():
        return db.execute_sql("SELECT task_uuid, at, sender, due, failed FROM beat_fire ORDER BY at").fetchall()


def test_a_failed_publish_is_stored_once_on_its_entry_and_stays_failed(beat_writer) -> None:
    db, w = beat_writer
    put(w, [NO_TASK, SENT, FAILED])
    put(w, [NO_TASK, SENT, FAILED], redelivered=True)  # a collector killed before acknowledging
    rows = fire_rows(db)
    assert len(rows) == 2, rows
    (no_task_key, _, sender, due0, error0), (key, at, _, due, error) = rows
    assert no_task_key.startswith(beat_status.NO_TASK_PREFIX) and error0 == "EncodeError('not JSON serializable')"
    assert (key, sender, due, error) == ("t-failed", "gen1@beat-host:42", DUE, REFUSED)
    assert at == pytest.approx(DUE + 0.2) and due0 == pytest.approx(DUE - 60)

    # The watcher then finds the task-sent record's task, stamped with the entry: it is that failed attempt.
    beat_pass(w, [FoundFire(("app", "tick"), "t-failed", DUE + 0.2, "gen1@beat-host:42", DUE)], at=NOW - 1)
    assert [r[4] for r in fire_rows(db)] == ["EncodeError('not JSON serializable')", REFUSED]


def test_the_board_calls_the_slot_missed_and_names_the_failure_in_page_api_and_alert(beat_writer) -> None:
    db, w = beat_writer
    beat_pass(w, [FoundFire(("app", "tick"), "t-ok", DUE - 59.8, "gen1@beat-host:42", DUE - 60)])
    put(w, [SENT, FAILED])
    beat_pass(w, [], at=NOW)
    with db.connection_context():
        board = beat_board.load_board(default_settings(), "UTC", now=NOW)
        [entry] = board.entries
        status = entry.status
        assert status.state == beat_status.MISSED and status.last_fired_at == pytest.approx(DUE - 59.8)
        assert status.publish_failed is not None and status.publish_failed.failed == REFUSED
        assert [(f.task_uuid, f.failed) for f in status.fires] == [("t-failed", REFUSED), ("t-ok", None)]

        detector = all_detectors()["beat_missed"]
        [finding] = detector.run(DetectContext(db, NOW, default_settings(), "UTC"), detector.resolve_params({}))
    assert "the publish failed" in finding.summary and REFUSED in finding.summary
    assert finding.detail["publish_failed"] == REFUSED


def test_a_failure_for_an_entry_not_read_yet_is_not_kept(beat_writer) -> None:
    db, w = beat_writer
    put(w, [{**FAILED, "beat_entry": "not-watched"}])
    assert fire_rows(db) == []
