"""Garbage on the event channel is counted and logged, never fatal, and never stored as something else."""
from __future__ import annotations

import base64
import json

import pytest
import redis
from celery import Celery

from tests.support.collector import running_collector
from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.waiting import wait_for


def envelope(body, content_type="application/json", encode=True) -> str:
    raw = json.dumps(body).encode() if encode else body
    return json.dumps({"body": base64.b64encode(raw).decode(), "content-type": content_type,
                       "content-encoding": "utf-8", "headers": {},
                       "properties": {"body_encoding": "base64", "delivery_info": {}}})


GARBAGE_MESSAGES = [
    b"not json at all",
    b"\xff\xfe\x00binary",
    json.dumps([1, 2, 3]),
    json.dumps({"no": "body"}),
    json.dumps({"body": "!!!not base64!!!", "properties": {"body_encoding": "base64"}}),
    envelope(b"{broken json", encode=False),
    envelope({"type": "task-succeeded"}, content_type="application/x-python-serialize"),  # pickle: refused
    envelope("a string, not an event"),
    envelope({"type": 42, "uuid": "x"}),
    envelope({"type": "task-received"}),  # no uuid
    envelope({"type": "task-received", "uuid": {"nested": "dict"}}),
    envelope({"type": "worker-heartbeat"}),  # no hostname
    envelope({"type": "<script>alert(1)</script>", "uuid": "x"}),
    envelope([None, 1, "x", {"type": "task-started"}]),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("reader_process", [True, False], ids=["reader-process", "in-process"])
def test_a_flood_of_malformed_messages_is_counted_and_the_collector_keeps_going(redis_db, database_url, store,
                                                                                 reader_process):
    app = Celery(broker=redis_db)
    db_number = redis_db.rsplit("/", 1)[1]
    client = redis.Redis.from_url(redis_db)
    with running_collector(app, database_url, reader_process=reader_process) as collector:
        pipe = client.pipeline(transaction=False)
        for _ in range(100):
            for message in GARBAGE_MESSAGES:
                pipe.publish(f"/{db_number}.celeryev/task.multi", message)
        pipe.execute()
        with dispatcher(redis_db) as d:
            good = send_task_lifecycle(d)
        wait_for(lambda: store.state(good) == "SUCCESS", timeout=15, message="valid task after garbage not stored")
        expected_bad = 100 * (len(GARBAGE_MESSAGES) + 3)  # the last message holds 4 bad events
        wait_for(lambda: (store.status() or {}).get("events_malformed", 0) >= expected_bad, timeout=10,
                 message="malformed messages not all counted")
        assert collector.writer.is_alive()
    assert store.count("task") == 1
    assert store.scalar("SELECT COUNT(*) FROM task_event") == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_hostile_values_are_stored_as_plain_text_and_bounded(redis_db, database_url, store):
    app = Celery(broker=redis_db)
    huge = "x" * 5_000_000
    with running_collector(app, database_url):
        with dispatcher(redis_db) as d:
            d.send("task-received", uuid="hostile-1", name="<img src=x onerror=alert(1)>",
                   args="('<script>alert(1)</script>',)", kwargs=f"{{'blob': '{huge}'}}", retries=0)
            d.send("task-failed", uuid="hostile-1", exception="E()", traceback=huge, timestamp="not a number")
            d.send("task-progress", uuid="hostile-1", payload={"deep": [huge]})
        wait_for(lambda: store.state("hostile-1") == "FAILURE", timeout=15, message="hostile task not stored")
    task = store.task("hostile-1")
    assert task["args"] == "('<script>alert(1)</script>',)"  # stored verbatim; pages escape it
    assert len(task["kwargs"]) < 20_000 and "truncated" in task["kwargs"]
    assert len(task["traceback"]) < 100_000 and "truncated" in task["traceback"]
    assert task["failed_at"] is None  # a timestamp that is not a number is dropped, not trusted
    progress = store.events("hostile-1")[-1]
    assert progress["type"] == "task-progress" and len(json.dumps(progress["data"])) < 40_000
