"""A queue filled while no worker consumes it: a real `webui serve` samples it, and the detectors find it."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests import celeryapp
from tests.support.store import close_database
from tests.support.waiting import wait_for
from webui.detect.findings import DetectContext, Finding
from webui.detect.registry import all_detectors
from webui.settings import default_settings
from webui.store.database import open_database
from webui.store.models import QueueSample, Worker, WorkerInspection


@pytest.fixture
def unattended_queue(worker) -> Iterator[str]:
    """A queue name no worker listens on; its Redis list is deleted afterwards."""
    name = f"unattended-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(worker.broker_url)
    try:
        client.delete(name)
    finally:
        client.close()


def test_a_queue_nobody_consumes_is_found_unattended_and_deep(worker, database_url, run_webui,
                                                               unattended_queue) -> None:
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval",
                       "0.1", "--no-enable-events", "--queue-sample-interval", "1")
    server.wait_http("/healthcheck", 200, timeout=30)
    celeryapp.configure(worker.broker_url)
    for i in range(3):  # task-sent events (tests.celeryapp sends them) tell the sampler about the queue
        celeryapp.add.apply_async((i, i), queue=unattended_queue)

    db = open_database(database_url)
    detectors = all_detectors()

    def detect(name: str, **params: object) -> list[Finding]:
        detector = detectors[name]
        with db.bind_ctx([QueueSample, Worker, WorkerInspection]), db.connection_context():
            found = detector.run(DetectContext(db, time.time(), default_settings()), detector.resolve_params(params))
        return [f for f in found if f.subject == unattended_queue]

    try:
        [unattended] = wait_for(lambda: detect("queue_unattended"), timeout=30,
                                message="queue_unattended never found the queue")
        # Above 2 messages in every sample of the last 3 seconds (at least 3 samples, one a second).
        [deep] = wait_for(lambda: detect("queue_depth", depth=2, minutes=0.05), timeout=30,
                          message="queue_depth never found the queue")
    finally:
        close_database(db)

    assert unattended.value == 3.0 and unattended.link == f"/queue/{unattended_queue}"
    assert f"Queue {unattended_queue}: 3 messages waiting and no online worker consumes it" in unattended.summary
    assert deep.value == 3.0 and deep.scope == unattended_queue
