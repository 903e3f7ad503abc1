"""10,000 fuzzed event messages through a real collector: it stays up, counts what it refuses, stores the rest
as plain values, and every page and API route that shows what it stored still answers without a 500.

The messages are generated from a seed (so a failure can be replayed): broken envelopes (random bytes, cut JSON,
bad base64, unknown content types), and well-formed envelopes carrying events whose fields have the wrong types
and hostile values — NaN and infinities, 2**80, NUL and control characters, HTML, deep nesting, 100 KB strings.
"""
from __future__ import annotations

import base64
import json
import math
import random
import time
from typing import Any
from urllib.parse import quote

import pytest
import redis
from celery import Celery

from tests.support.collector import running_collector
from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.store import close_database
from tests.support.waiting import wait_for
from webui.app import create_app
from webui.settings import default_settings

MESSAGES = 10_000
SEED = 20261201
EVENT_TYPES = ("task-sent", "task-received", "task-started", "task-succeeded", "task-failed", "task-retried",
               "task-revoked", "task-rejected", "task-progress", "worker-online", "worker-heartbeat",
               "worker-offline", "task-", "worker-", "TASK-SENT", "<script>alert(1)</script>", "")
FIELDS = ("uuid", "name", "args", "kwargs", "result", "exception", "traceback", "timestamp", "retries", "hostname",
          "runtime", "clock", "freq", "active", "processed", "loadavg", "pid", "root_id", "parent_id", "eta",
          "expires", "queue", "routing_key", "exchange", "signum", "terminated", "expired", "requeue", "utcoffset",
          "sw_ident", "sw_ver", "sw_sys", "local_received", "worker", "state", "type")
STRINGS = ("", " ", "\x00", "\x1b[31mred", "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>',
           "ünïcødé ☃ 𝕏", "\ud800", "../../etc/passwd", "'; DROP TABLE task; --", "%s%s%n", "a/b", "?x=1#y")


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(12 if depth < 3 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice((True, False))
    if kind == 2:
        return rng.choice((0, -1, 1, 2**31, 2**63, 2**80, -(2**80)))
    if kind == 3:
        return rng.choice((0.0, -0.0, 1e308, -1e308, 1e-308, math.nan, math.inf, -math.inf, 1.8e9))
    if kind in (4, 5, 6):
        return rng.choice(STRINGS)
    if kind == 7:  # long text, now and then very long (the collector bounds what it keeps)
        return (rng.choice(STRINGS[1:]) * 20_000)[:100_000 if rng.random() < 0.02 else 1_000]
    if kind in (8, 9):
        return [value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {rng.choice(FIELDS + STRINGS): value(rng, depth + 1) for _ in range(rng.randrange(5))}


def fuzzed_event(rng: random.Random, n: int) -> Any:
    if rng.random() < 0.05:
        return value(rng)  # not even an object
    event: dict[str, Any] = {"type": rng.choice(EVENT_TYPES) if rng.random() < 0.9 else value(rng)}
    if rng.random() < 0.8:
        event["uuid"] = f"fuzz-{n}" if rng.random() < 0.7 else value(rng)
    for field in rng.sample(FIELDS, rng.randrange(len(FIELDS) // 4)):
        event[field] = value(rng)
    return event


def dumps(body: Any) -> bytes:
    """JSON as Python writes it: NaN and Infinity included, lone surrogates escaped."""
    return json.dumps(body, allow_nan=True, ensure_ascii=True).encode()


def envelope(raw: bytes, content_type: str = "application/json", body_encoding: str = "base64") -> bytes:
    body = base64.b64encode(raw).decode() if body_encoding == "base64" else raw.decode("latin-1")
    return dumps({"body": body, "content-type": content_type, "content-encoding": "utf-8", "headers": {},
                  "properties": {"body_encoding": body_encoding, "delivery_info": {}}})


def fuzzed_message(rng: random.Random, n: int) -> bytes:
    roll = rng.random()
    events = [fuzzed_event(rng, n * 10 + i) for i in range(rng.randrange(1, 6))]
    good = envelope(dumps(events if len(events) > 1 else events[0]))
    if roll < 0.05:
        return rng.randbytes(rng.randrange(1, 200))
    if roll < 0.10:
        return good[: rng.randrange(1, len(good))]  # cut short
    if roll < 0.13:
        return envelope(dumps(events), content_type=rng.choice(("application/x-python-serialize",
                                                                "application/x-yaml", "text/html", "")))
    if roll < 0.16:
        return dumps({"body": "!!" + rng.choice(STRINGS), "properties": {"body_encoding": "base64"}})
    if roll < 0.19:
        return envelope(dumps(events), body_encoding=rng.choice(("utf-8", "rot13", "")))
    return good


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ten_thousand_fuzzed_messages_leave_the_collector_up_and_every_page_answering(redis_db, database_url,
                                                                                      store):
    rng = random.Random(SEED)
    app = Celery(broker=redis_db)
    channel = f"/{redis_db.rsplit('/', 1)[1]}.celeryev/task.multi"
    client = redis.Redis.from_url(redis_db)
    with running_collector(app, database_url, reader_process=True) as collector:
        pipe = client.pipeline(transaction=False)
        for n in range(MESSAGES):
            pipe.publish(channel, fuzzed_message(rng, n))
            if n % 200 == 199:
                pipe.execute()
                time.sleep(0.02)  # a busy cluster's pace, not one 20 MB burst beyond Redis' pub/sub buffer
        pipe.execute()
        with dispatcher(redis_db) as d:
            good = send_task_lifecycle(d)
        wait_for(lambda: store.state(good) == "SUCCESS", timeout=60, message="a valid task after the fuzz not stored")
        assert collector.writer.is_alive() and collector.stats.connected
        assert (store.status() or {}).get("events_malformed", 0) > 0
    client.close()
    fuzzed = [row["uuid"] for row in store.rows("SELECT uuid FROM task WHERE uuid LIKE 'fuzz-%' ORDER BY id LIMIT 400")]
    assert len(fuzzed) > 100, "almost nothing of the fuzz was stored: the generator no longer makes valid events"
    assert store.status().get("last_error") in (None, "")

    application = create_app(default_settings(broker="memory://", database=database_url, insecure_no_auth=True,
                                              alert_default_rules=False), start_collector=False)
    try:
        web = application.test_client()
        urls = ["/", "/tasks", "/tasks?state=FAILURE", "/tasks?q=script", "/tasks?sort=slowest", "/events",
                "/workers", "/api/tasks?limit=1000", "/api/v1/tasks?limit=500", "/api/v1/tasks/count",
                "/api/task/types", "/api/workers", "/tasks/export.json", "/tasks/export.csv", "/metrics"]
        urls += [f"/task/{quote(uuid, safe='')}" for uuid in fuzzed[:200]]
        urls += [f"/api/task/info/{quote(uuid, safe='')}" for uuid in fuzzed[:50]]
        urls += [f"/api/v1/tasks/{quote(uuid, safe='')}/events" for uuid in fuzzed[:50]]
        workers = [row["hostname"] for row in store.rows("SELECT hostname FROM worker LIMIT 50")]
        urls += [f"/worker/{quote(hostname, safe='')}" for hostname in workers]
        for url in urls:
            response = web.get(url)
            assert response.status_code < 500, f"{url}: {response.status_code}\n{response.get_data(as_text=True)[:800]}"
            body = response.get_data(as_text=True)
            if response.content_type.startswith("text/html"):
                assert "<script>alert(1)" not in body and "<img src=x" not in body, f"{url} shows markup unescaped"
    finally:
        close_database(application.config["WEBUI_DATABASE"])
