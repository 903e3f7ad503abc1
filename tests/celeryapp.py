"""The Celery app the integration tests' real worker runs (`celery -A tests.celeryapp worker`).

The broker comes from env WEBUI_TEST_BROKER so the session fixture can point the worker and the test process
at the same Redis database. Tasks are named `tests.celeryapp.<function>`.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from celery import Celery, Task
from celery.utils.log import get_task_logger

import webui.agent

BROKER_URL = os.environ.get("WEBUI_TEST_BROKER", "redis://127.0.0.1:6379/1")

app = Celery("tests.celeryapp", broker=BROKER_URL, backend=BROKER_URL)
app.conf.update(
    task_send_sent_event=True,
    # WEBUI_TEST_TASK_EVENTS=0 starts a worker as people often do: without task events.
    worker_send_task_events=os.environ.get("WEBUI_TEST_TASK_EVENTS", "1") == "1",
    task_track_started=True,
    worker_prefetch_multiplier=1,
    # Same transport options in every process (worker, tests, WebUI), or broadcasts and redelivery disagree.
    broker_transport_options={"visibility_timeout": 3600},
    broker_connection_retry_on_startup=True,
)
# WEBUI_AGENT_URL (tests/integration/test_agent_*.py) switches the worker companion on: the one-setting way.
webui.agent.install_from_settings(app)


def configure(broker_url: str) -> Celery:
    """Point this process's app at `broker_url` (broker and result backend); the worker reads the env."""
    app.conf.update(broker_url=broker_url, result_backend=broker_url)
    return app


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(bind=True)
def retry_twice(self: Task) -> str:
    if self.request.retries < 2:
        raise self.retry(countdown=0.1)
    return "done after 2 retries"


@app.task
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task
def kill_self() -> None:
    """SIGKILL the pool process running this task: the worker reports WorkerLostError and replaces it."""
    os.kill(os.getpid(), signal.SIGKILL)


@app.task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": args, "kwargs": kwargs}


@app.task
def progress_steps(steps: int, pause: float) -> int:
    """Reports its progress through the worker companion (a no-op without it) after each step, and logs it
    (captured when the companion's capture_logs is on)."""
    for step in range(1, steps + 1):
        time.sleep(pause)
        webui.agent.report_progress(step, steps, f"step {step}")
        get_task_logger(__name__).info("step %d of %d done", step, steps)
    return steps


@app.task(webui_progress_every=2)
def promise_then_sleep(reports: int, sleep: float) -> int:
    """Promises progress every 2 s (the task option), reports `reports` times 1.2 s apart, then goes silent for
    `sleep` seconds: the promise breaks while it still runs."""
    for step in range(1, reports + 1):
        time.sleep(1.2)
        webui.agent.report_progress(step, 10, f"step {step}")
    time.sleep(sleep)
    return reports


@app.task
def promise_and_keep_it(reports: int, pause: float) -> int:
    """Promises progress every 2 s from inside (expect_progress) and keeps it: a report every `pause` seconds."""
    webui.agent.expect_progress(2)
    for step in range(1, reports + 1):
        time.sleep(pause)
        webui.agent.report_progress(step, reports + 1, f"step {step}")
    return reports


@app.task(bind=True)
def log_lines(self: Task, count: int, text: str = "line", pause: float = 0.0) -> int:
    """Logs `count` lines, alternately through the task logger and a module logger (the root's way), for the
    companion's task logs (webui.agent.logs), `pause` seconds apart."""
    logger = get_task_logger(__name__)
    for number in range(1, count + 1):
        (logger.info if number % 2 else logging.getLogger("tests.app").warning)("%s %d of attempt %d", text, number,
                                                                                   self.request.retries + 1)
        time.sleep(pause)
    return count


@app.task(bind=True)
def log_and_retry(self: Task) -> str:
    """Logs one line per attempt and retries once: two attempts, two logs."""
    get_task_logger(__name__).info("this is attempt %d", self.request.retries + 1)
    if self.request.retries < 1:
        raise self.retry(countdown=0.1)
    return "second attempt done"


@app.task
def log_then_die() -> None:
    """Logs, waits for the companion to send it, then SIGKILLs its pool process (kill_self, with a log)."""
    get_task_logger(__name__).warning("last words before SIGKILL")
    time.sleep(1.0)  # several of the publisher's flush intervals
    os.kill(os.getpid(), signal.SIGKILL)
