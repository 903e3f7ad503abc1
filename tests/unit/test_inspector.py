"""The inspector turns inspect replies into each worker's stored data: masked, merged, beat left out."""
from __future__ import annotations

import json

from webui.collector import inspector
from webui.collector.writer import CollectorStats, Writer
from webui.privacy import Redactor
from webui.store.database import open_database
from webui.store.schema import upgrade

ALICE, BOB = "alice@host", "bob@host"


def stats(concurrency: int) -> dict:
    return {"pid": 10, "pool": {"implementation": "celery.concurrency.prefork:TaskPool",
                                "max-concurrency": concurrency}, "prefetch_count": 4 * concurrency}


def replies(**by_command: dict) -> dict:
    return {command: by_command.get(command) for command in inspector.COMMANDS}


def test_it_pivots_replies_by_worker_and_ignores_celerybeat() -> None:
    result = inspector.by_worker(replies(
        stats={ALICE: stats(2), "celerybeat@host": {"ok": "pong"}},
        registered={ALICE: ["proj.add"], BOB: ["proj.mul"]},
    ), Redactor())

    assert set(result) == {ALICE, BOB}
    assert result[ALICE] == {"stats": stats(2), "registered": ["proj.add"]}
    assert result[BOB] == {"registered": ["proj.mul"]}


def test_it_masks_task_arguments_as_in_task_events() -> None:
    request = {"id": "t1", "name": "proj.login", "args": ["alice", "4111 1111 1111 1111"],
               "kwargs": {"password": "hunter2", "user": "alice"}}
    result = inspector.by_worker(replies(
        active={ALICE: [{**request, "args": "('alice', '4111 1111 1111 1111')",
                         "kwargs": "{'password': 'hunter2'}"}]},  # safe=True: repr strings
        reserved={ALICE: [request]},  # real values
        scheduled={ALICE: [{"eta": "2030-01-01T00:00:00", "priority": 6, "request": request}]},
    ), Redactor())[ALICE]

    assert result["active"][0]["args"] == "('alice', '***')"
    assert result["active"][0]["kwargs"] == "{'password': '***'}"
    assert result["reserved"][0]["args"] == "('alice', '***')"
    assert result["reserved"][0]["kwargs"] == "{'password': '***', 'user': 'alice'}"
    assert result["scheduled"][0]["request"]["kwargs"] == "{'password': '***', 'user': 'alice'}"
    assert result["scheduled"][0]["eta"] == "2030-01-01T00:00:00"
    assert "hunter2" not in json.dumps(result)


def test_arguments_are_dropped_when_args_are_not_stored() -> None:
    request = {"id": "t1", "name": "proj.add", "args": [1, 2], "kwargs": {}}
    result = inspector.by_worker(replies(reserved={ALICE: [request]}), Redactor(store_args=False))

    assert result[ALICE]["reserved"][0] == {**request, "args": None, "kwargs": None}


def test_it_masks_secrets_in_the_configuration() -> None:
    conf = {"broker_url": "redis://:s3cret@redis:6379/0", "custom": {"api_key": "abc"}, "timezone": "UTC"}
    result = inspector.by_worker(replies(conf={ALICE: conf}), Redactor())[ALICE]["conf"]

    assert result == {"broker_url": "redis://:***@redis:6379/0", "custom": {"api_key": "***"}, "timezone": "UTC"}


def test_stats_keep_their_shape_when_a_number_looks_like_a_card_number() -> None:
    # 4111111111111111 passes the Luhn check: masked through the JSON text, it left invalid JSON behind.
    stats = {"rusage": {"utime": 4111111111111111, "maxrss": 52000}, "pid": 42,
             "broker": {"hostname": "redis", "password": "hunter2", "userid": None,
                        "uri": "redis://:hunter2@redis:6379/0"}}
    data = inspector.by_worker({"stats": {"w1": stats}}, Redactor())["w1"]["stats"]
    assert isinstance(data, dict)
    assert data["rusage"] == {"utime": 4111111111111111, "maxrss": 52000} and data["pid"] == 42
    assert data["broker"]["password"] == "***" and data["broker"]["userid"] is None
    assert "hunter2" not in json.dumps(data)


def test_a_command_that_did_not_answer_keeps_its_previous_reply() -> None:
    previous = {"stats": stats(2), "registered": ["proj.add"]}

    data, error = inspector.merge(previous, {"stats": stats(4), "conf": {"error": "ValueError('x')"}})

    assert data == {"stats": stats(4), "registered": ["proj.add"]}
    assert error == "conf: ValueError('x')"


def test_a_worker_that_did_not_answer_keeps_its_data_and_time(tmp_path) -> None:
    db = open_database(f"sqlite:///{tmp_path}/w.sqlite3")
    upgrade(db)
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.02)
    writer.start()
    assert writer.leading.wait(5)
    writer.put_inspection({ALICE: {"stats": stats(2)}, BOB: {"stats": stats(8), "registered": ["a"]}}, 100.0)
    writer.put_inspection({ALICE: {"stats": stats(3)}}, 200.0)  # Bob did not answer this time
    writer.put_inspection({BOB: {"registered": ["a", "b"]}}, 300.0)  # Bob answered one command only
    writer.stop()
    with db.connection_context():
        rows = {h: (at, json.loads(data), error) for h, at, data, error in db.execute_sql(
            "SELECT hostname, at, data, error FROM worker_inspection").fetchall()}
    db.close()

    assert rows[ALICE] == (200.0, {"stats": stats(3)}, None)
    assert rows[BOB] == (300.0, {"stats": stats(8), "registered": ["a", "b"]}, None)
