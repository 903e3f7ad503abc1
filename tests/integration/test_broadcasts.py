"""Many broadcasts at once (the inspector's eight, the reconciler's three, controls) never deadlock."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.support.processes import CeleryWorker
from webui import broadcasts


def test_more_concurrent_inspects_than_the_pool_holds_all_return(worker: CeleryWorker) -> None:
    # Celery's own app.control needs two pooled connections per broadcast: with more in flight than
    # broker_pool_limit, each holds one and waits forever for a second.
    app = worker.app
    calls = 3 * (app.conf.broker_pool_limit or 10)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=calls) as pool:
        futures = [pool.submit(broadcasts.inspect, app, "ping", timeout=2.0, limit=1,
                               destination=[worker.hostname]) for _ in range(calls)]
        replies = [f.result(timeout=30) for f in futures]

    assert all(reply == {worker.hostname: {"ok": "pong"}} for reply in replies)
    assert time.monotonic() - started < 20


def test_a_broadcast_with_replies_returns_them(worker: CeleryWorker) -> None:
    replies = broadcasts.broadcast(worker.app, "ping", reply=True, timeout=2.0, destination=[worker.hostname])

    assert replies == [{worker.hostname: {"ok": "pong"}}]
