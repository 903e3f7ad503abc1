"""The writer confirms a message only once its events are committed, and stores a redelivered event once."""
from __future__ import annotations

import time

from tests.support.waiting import wait_for
from webui.collector.writer import CollectorStats, Writer
from webui.privacy import Redactor
from webui.store.database import open_database
from webui.store.schema import upgrade


def lifecycle(uuid: str, ts: float) -> list[dict]:
    common = {"uuid": uuid, "hostname": "w1@h", "pid": 10}
    return [
        {**common, "type": "task-received", "name": "t.add", "timestamp": ts, "clock": 1, "retries": 0},
        {**common, "type": "task-started", "timestamp": ts + 0.1, "clock": 2},
        {**common, "type": "task-succeeded", "timestamp": ts + 0.2, "clock": 3, "result": "1", "runtime": 0.1},
    ]


def start_writer(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/w.sqlite3")
    upgrade(db)
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.05)
    writer.start()
    assert writer.leading.wait(5)
    return db, writer


def scalar(db, sql):
    with db.connection_context():
        return db.execute_sql(sql).fetchone()[0]


def test_a_receipt_is_called_only_once_its_events_are_committed(tmp_path):
    db, writer = start_writer(tmp_path)
    reader = open_database(f"sqlite:///{tmp_path}/w.sqlite3")
    seen_at_receipt: list[int] = []
    writer.put_events(lifecycle("t1", 100.0), time.time(),
                      receipt=lambda: seen_at_receipt.append(scalar(reader, "SELECT COUNT(*) FROM task_event")))
    wait_for(lambda: seen_at_receipt, message="the receipt was never called")
    writer.stop()
    assert seen_at_receipt == [3]  # another connection already sees the three events when the receipt comes
    reader.close()
    db.close()


def test_a_redelivered_message_already_stored_changes_nothing(tmp_path):
    db, writer = start_writer(tmp_path)
    writer.put_events(lifecycle("t1", 100.0), time.time())
    wait_for(lambda: writer.pending() == 0, message="first delivery not committed")
    writer.put_events(lifecycle("t1", 100.0), time.time(), redelivered=True)
    writer.put_events(lifecycle("t2", 200.0), time.time(), redelivered=True)  # redelivered, never stored
    wait_for(lambda: writer.pending() == 0, message="redelivery not committed")
    writer.stop()
    with db.connection_context():
        tasks = db.execute_sql("SELECT uuid, state, executions, event_count FROM task ORDER BY uuid").fetchall()
        events = db.execute_sql("SELECT COUNT(*) FROM task_event").fetchone()[0]
        rollups = db.execute_sql("SELECT SUM(received), SUM(started), SUM(succeeded) FROM task_minute").fetchone()
    assert tasks == [("t1", "SUCCESS", 1, 3), ("t2", "SUCCESS", 1, 3)]
    assert events == 6
    assert tuple(rollups) == (2, 2, 2)
    db.close()


def test_an_old_heartbeat_delivered_again_does_not_bring_an_offline_worker_back(tmp_path):
    db, writer = start_writer(tmp_path)
    beat = {"type": "worker-heartbeat", "hostname": "w1@h", "timestamp": 100.0, "freq": 2.0, "active": 0,
            "processed": 0, "pid": 10, "clock": 1}
    offline = {"type": "worker-offline", "hostname": "w1@h", "timestamp": 101.0, "pid": 10, "clock": 2}
    writer.put_events([beat, offline], time.time())
    wait_for(lambda: writer.pending() == 0, message="first delivery not committed")
    writer.put_events([beat, offline], time.time(), redelivered=True)
    wait_for(lambda: writer.pending() == 0, message="redelivery not committed")
    writer.stop()
    with db.connection_context():
        transitions = db.execute_sql("SELECT online, reason FROM worker_event ORDER BY id").fetchall()
    assert [(bool(online), reason) for online, reason in transitions] == [(True, "heartbeat"),
                                                                           (False, "worker-offline")]
    db.close()
