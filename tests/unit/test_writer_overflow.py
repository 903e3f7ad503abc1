"""When the writer cannot keep up, what it drops is counted and recorded as a gap with the number lost."""
from __future__ import annotations

from tests.support.waiting import wait_for
from webui.collector.writer import CollectorStats, Writer
from webui.privacy import Redactor
from webui.store.database import open_database
from webui.store.schema import upgrade


def event(i: int) -> dict:
    return {"type": "task-succeeded", "uuid": f"t{i}", "timestamp": 1.0, "result": "1", "runtime": 0.1}


def test_events_beyond_the_buffer_bound_are_counted_and_become_a_gap(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/w.sqlite3")
    upgrade(db)
    stats = CollectorStats(leader="test")
    writer = Writer(db, Redactor(), stats, max_buffered_events=10, batch_interval=0.05)
    for i in range(25):  # the writer is not running yet: the first 10 fit, 15 are dropped
        writer.put_events([event(i)], 100.0 + i)
    writer.start()
    writer.leading.wait(5)
    wait_for(lambda: writer.pending() == 0, message="the writer never drained its buffer")
    writer.put_events([event(99)], 200.0)  # room again: the overflow ends here
    writer.stop()
    with db.connection_context():
        gaps = db.execute_sql("SELECT kind, events_lost, ended_at FROM collector_gap").fetchall()
        stored = db.execute_sql("SELECT COUNT(*) FROM task").fetchone()[0]
    assert stats.events_dropped == 15
    assert gaps == [("buffer-overflow", 15, gaps[0][2])] and gaps[0][2] is not None
    assert stored == 11
    db.close()


def test_stopping_with_the_database_gone_gives_up_and_says_what_was_not_written(tmp_path, caplog):
    import threading

    db = open_database(f"sqlite:///{tmp_path}/w.sqlite3")
    upgrade(db)
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.05)
    writer.start()
    writer.leading.wait(5)
    # Every commit now fails, as with a database that went away.
    writer.rows.write_events = lambda records: (_ for _ in ()).throw(OSError("database gone"))
    writer.put_events([event(i) for i in range(5)], 100.0)
    stopper = threading.Thread(target=writer.stop, kwargs={"timeout": 30})
    stopper.start()
    stopper.join(30)
    assert not writer.is_alive(), "the writer never gave up on an unavailable database while stopping"
    assert "5 buffered events not written" in caplog.text
    db.close()
