"""A database made by the previous schema version is upgraded on start, keeping what it holds."""
from __future__ import annotations

from tests.support.store import close_database
from webui.store.database import open_database
from webui.store.schema import current_version, latest_version, runner_migrations, upgrade


def insert_v1_rows(db) -> None:
    p = db.param
    with db.connection_context():
        db.execute_sql(
            f"INSERT INTO task (id, uuid, name, state, args, retries, attempt, delivery, rank, started_attempt, "
            f"started_delivery, starts, executions, event_count, updated_at, succeeded_at) "
            f"VALUES (1, 'old-task', 'proj.add', 'SUCCESS', '(1, 2)', 0, 0, 0, 3, 0, 0, 1, 1, 1, {p}, {p})",
            (1000.5, 1000.25))
        db.execute_sql(
            f"INSERT INTO task_event (task_id, seq, type, timestamp, received) VALUES (1, 0, 'task-succeeded', "
            f"{p}, {p})", (1000.25, 1000.5))
        db.execute_sql(
            f"INSERT INTO worker (hostname, online, first_seen, last_seen) VALUES ('w1@old', {p}, {p}, {p})",
            (False, 900.0, 1000.0))


def test_a_version_1_database_is_upgraded_and_keeps_its_data(database_url, store):
    db = open_database(database_url)
    try:
        assert upgrade(db, target="0001_initial") == ["0001_initial"]
        insert_v1_rows(db)
        assert current_version(db) == 1

        applied = upgrade(db)

        assert applied == runner_migrations()[1:]
        assert current_version(db) == latest_version() == len(runner_migrations())
        assert upgrade(db) == []  # idempotent: a second start applies nothing
    finally:
        close_database(db)
    task = store.task("old-task")
    assert task["state"] == "SUCCESS" and task["args"] == "(1, 2)" and task["succeeded_at"] == 1000.25
    assert store.events("old-task")[0]["type"] == "task-succeeded"
    assert store.rows("SELECT hostname FROM worker") == [{"hostname": "w1@old"}]
    assert store.count("worker_event") == 0  # the new tables exist and are usable
    assert store.count("worker_inspection") == 0


def test_timestamps_keep_sub_second_precision(database_url, store):
    db = open_database(database_url)
    try:
        upgrade(db)
        insert_v1_rows(db)
    finally:
        close_database(db)
    # PostgreSQL's REAL would round epoch seconds to ~2 minutes: times must be DOUBLE PRECISION.
    assert store.task("old-task")["succeeded_at"] == 1000.25
    precise = 1795287000.123456
    store.execute("UPDATE task SET started_at = ? WHERE uuid = 'old-task'", (precise,))
    assert store.task("old-task")["started_at"] == precise
