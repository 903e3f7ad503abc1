"""The test fixtures themselves: a real worker that runs tasks and sends events, brokers we can restart."""
from __future__ import annotations

import base64
import json
import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from billiard.exceptions import WorkerLostError

from tests.celeryapp import add, echo, fail, kill_self, retry_twice
from tests.support.processes import CeleryWorker
from tests.support.services import PrivateRedis, redis_available, with_path
from tests.support.waiting import wait_for


def test_it_runs_tasks_on_the_session_worker(worker: CeleryWorker) -> None:
    assert add.delay(2, 3).get(timeout=10) == 5


def test_it_answers_ping_by_its_hostname(worker: CeleryWorker) -> None:
    replies = worker.app.control.ping(destination=[worker.hostname], timeout=2, limit=1)

    assert replies == [{worker.hostname: {"ok": "pong"}}]


def test_its_tasks_behave_as_their_names_say(worker: CeleryWorker) -> None:
    assert echo.delay(1, "two", three=3).get(timeout=10) == {"args": [1, "two"], "kwargs": {"three": 3}}
    assert retry_twice.delay().get(timeout=10) == "done after 2 retries"
    with pytest.raises(ValueError, match="boom"):
        fail.delay("boom").get(timeout=10)


def test_it_sends_task_events_batched_like_any_prefork_worker(worker: CeleryWorker) -> None:
    subscriber = redis.Redis.from_url(worker.broker_url).pubsub(ignore_subscribe_messages=True)
    subscriber.psubscribe(f"/{worker.broker_url.rsplit('/', 1)[1]}.celeryev/*")
    try:
        task_id = add.delay(1, 1).id
        seen: list[tuple[str, str]] = []

        def succeeded() -> bool:
            seen.extend(_task_events(subscriber, task_id))
            return ("task.multi", "task-succeeded") in seen

        wait_for(succeeded, timeout=10, message=f"no task-succeeded event for {task_id}")
    finally:
        subscriber.close()

    assert ("task.sent", "task-sent") in seen
    assert {("task.multi", "task-received"), ("task.multi", "task-started")} <= set(seen)


def _task_events(subscriber: Any, task_id: str) -> list[tuple[str, str]]:
    """(routing key, event type) of the events about `task_id` in the next published message, if any."""
    message = subscriber.get_message(timeout=0.1)
    if message is None:
        return []
    envelope = json.loads(message["data"])
    body = json.loads(base64.b64decode(envelope["body"]))
    routing_key = envelope["properties"]["delivery_info"]["routing_key"]
    events = body if isinstance(body, list) else [body]
    return [(routing_key, event["type"]) for event in events if event.get("uuid") == task_id]


def test_it_survives_a_pool_child_killed_by_its_task(worker: CeleryWorker) -> None:
    with pytest.raises(WorkerLostError):
        kill_self.delay().get(timeout=30)

    assert worker.process is not None and worker.process.alive
    assert add.delay(2, 2).get(timeout=10) == 4


def test_it_is_restarted_when_its_main_process_died(celery_worker: CeleryWorker) -> None:
    dead = celery_worker.process
    assert dead is not None
    dead.kill(signal.SIGKILL)
    dead.wait()

    celery_worker.ensure_alive()

    assert celery_worker.pid != dead.pid
    assert add.delay(3, 4).get(timeout=10) == 7


def test_private_redis_restarts_on_the_same_port(private_redis: PrivateRedis) -> None:
    port = private_redis.port
    private_redis.client().set("key", "value")

    private_redis.stop()
    assert not redis_available(private_redis.url())
    private_redis.start()

    assert private_redis.port == port
    assert private_redis.client().ping()
    assert private_redis.client().get("key") is None, "a private Redis keeps nothing across restarts"


def test_private_redis_comes_back_after_being_killed(private_redis: PrivateRedis) -> None:
    private_redis.kill()
    assert not private_redis.running and not redis_available(private_redis.url())

    private_redis.start()

    assert private_redis.client().ping()


def test_each_test_gets_an_empty_redis_db_of_its_own(redis_db: str, redis_url: str) -> None:
    db = int(redis_db.rsplit("/", 1)[1])

    assert redis_db == with_path(redis_url, str(db))
    assert 2 <= db <= 15
    assert redis.Redis.from_url(redis_db).dbsize() == 0


def test_database_url_names_an_empty_database(database_url: str) -> None:
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        assert path.parent.is_dir() and not path.exists()
        return
    with psycopg.connect(database_url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)
