"""A Celery app whose task runs twice: acks_late, and a Redis visibility timeout shorter than its runtime.

The integration tests' duplicate-execution case (`celery -A tests.dupapp worker`). While the first worker runs
`tests.dupapp.slow_acked_late` its message stays unacknowledged; after `VISIBILITY_TIMEOUT` seconds a restore
sweep (every second here, instead of kombu's ~100 s) puts it back in the queue and an idle worker starts it
again. The worker's broker comes from env WEBUI_TEST_BROKER, like tests.celeryapp; a test makes an app of its
own with `make_app` (an app caches its broker connections, so one app per broker).
"""
from __future__ import annotations

import os
import time

from celery import Celery

VISIBILITY_TIMEOUT = 2


def make_app(broker_url: str) -> Celery:
    app = Celery("tests.dupapp", broker=broker_url, backend=broker_url, set_as_current=False)
    app.conf.update(
        task_send_sent_event=True,
        worker_send_task_events=True,
        worker_prefetch_multiplier=1,
        # Every process (workers, tests, the WebUI) must agree, or the shortest timeout restores for them all.
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT, "unacked_restore_interval": 1,
                                  "unacked_restore_throttle": 1},
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="tests.dupapp.slow_acked_late", acks_late=True)
    def slow_acked_late(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    return app


app = make_app(os.environ.get("WEBUI_TEST_BROKER", "redis://127.0.0.1:6379/1"))
