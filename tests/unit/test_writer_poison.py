"""An event the database refuses is dropped alone and counted; it never wedges the writer or takes its batch
with it. (Found by tests/integration/test_collector_fuzz.py: one such event used to stop all ingest.)"""
from __future__ import annotations

import sqlite3

from tests.support.waiting import wait_for
from webui.collector.decode import normalise
from webui.collector.writer import CollectorStats, Writer
from webui.privacy import Redactor
from webui.store.database import open_database
from webui.store.schema import upgrade


def event(i: int, **fields) -> dict:
    return {"type": "task-succeeded", "uuid": f"t{i}", "timestamp": 1.0, "result": "1", "runtime": 0.1, **fields}


def test_one_refused_event_is_dropped_and_counted_and_the_rest_of_its_batch_is_stored(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/w.sqlite3")
    upgrade(db)
    stats = CollectorStats(leader="test")
    writer = Writer(db, Redactor(), stats, batch_interval=0.05)
    write_tasks = writer.rows.write_tasks

    def refuse_poison(new, changed):
        if any(t.uuid == "t13" for t in new):
            raise sqlite3.IntegrityError("CHECK constraint failed: a value this database refuses")
        return write_tasks(new, changed)

    writer.rows.write_tasks = refuse_poison
    writer.put_events([event(i) for i in range(40)], 100.0)  # one batch: the writer is not running yet
    writer.start()
    writer.leading.wait(5)
    wait_for(lambda: writer.pending() == 0 and stats.events_malformed == 1, message="the writer is wedged")
    writer.put_events([event(99)], 101.0)
    wait_for(lambda: writer.pending() == 0, message="the writer stopped writing after the refused event")
    writer.stop()
    with db.connection_context():
        stored = {row[0] for row in db.execute_sql("SELECT uuid FROM task").fetchall()}
    assert stored == {f"t{i}" for i in range(40) if i != 13} | {"t99"}
    db.close()


def test_a_broken_database_is_still_retried_and_nothing_is_dropped(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/w.sqlite3")
    upgrade(db)
    stats = CollectorStats(leader="test")
    writer = Writer(db, Redactor(), stats, batch_interval=0.05)
    write_events = writer.rows.write_events
    failures = iter(range(2))

    def fail_twice(records):
        if next(failures, None) is not None:
            raise sqlite3.OperationalError("disk I/O error")
        return write_events(records)

    writer.rows.write_events = fail_twice
    writer.put_events([event(i) for i in range(10)], 100.0)
    writer.start()
    writer.leading.wait(5)
    wait_for(lambda: writer.pending() == 0, timeout=20, message="never written after the database came back")
    writer.stop()
    with db.connection_context():
        assert db.execute_sql("SELECT COUNT(*) FROM task").fetchone()[0] == 10
    assert stats.events_malformed == 0
    db.close()


def test_values_no_database_can_store_are_made_storable_not_refused():
    clean = normalise({"type": "task-received", "uuid": "u\x00", "args": "a\x00b", "name": "n\ud800",
                       "retries": 2**80, "clock": -(2**70), "runtime": 10**400,
                       "timestamp": 1e308}, 1.0)
    assert clean["uuid"] == "u\ufffd" and clean["args"] == "a\ufffdb" and clean["name"] == "n?"
    assert "retries" not in clean and "clock" not in clean and "runtime" not in clean
    assert "timestamp" not in clean  # no page could show it as a date
    assert normalise({"type": "task-sent", "uuid": "x", "timestamp": -1.0}, 1.0).get("timestamp") is None
    assert normalise({"type": "task-sent", "uuid": "x", "timestamp": 1.8e9}, 1.0)["timestamp"] == 1.8e9
