"""The companion's task-log handler (webui.agent.logs) without a worker: which records it keeps, the caps."""
from __future__ import annotations

import logging
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

from webui.agent import logs


class Collecting:
    """Stands in for the publisher: keeps what is put."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.dropped = 0

    def put(self, record: dict[str, Any]) -> None:
        self.records.append(record)


REQUEST = types.SimpleNamespace(id="task-1", retries=2, hostname="w1@test")


@pytest.fixture
def captured() -> Iterator[tuple[logs.TaskLogHandler, Collecting]]:
    publisher = Collecting()
    handler = logs.TaskLogHandler(publisher, max_lines=3, max_bytes=60)  # type: ignore[arg-type]
    logs.attach(handler)
    task_logger = logging.getLogger("celery.task")
    propagate, level = task_logger.propagate, logging.getLogger().level
    task_logger.propagate = True  # the worst case: each record reaches the handler twice
    logging.getLogger().setLevel(logging.INFO)
    try:
        yield handler, publisher
    finally:
        for name in logs.CAPTURED_LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        logging.getLogger().setLevel(level)
        task_logger.propagate = propagate


def test_only_the_task_s_thread_between_prerun_and_postrun_is_kept_once_each(captured) -> None:
    handler, publisher = captured
    task_logger = logging.getLogger("celery.task.proj")
    task_logger.info("before the task")
    handler.start(REQUEST)
    task_logger.info("one %s", "arg")
    other = threading.Thread(target=lambda: logging.getLogger("proj").info("another thread"))
    other.start()
    other.join()
    logging.getLogger("celery.app.trace").info("Task proj succeeded in 0.01s")
    handler.stop()
    logging.getLogger("proj").info("after the task")
    assert [(r["type"], r["uuid"], r["retries"], r["seq"], r["message"], r["logger"]) for r in publisher.records] == [
        ("task-log", "task-1", 2, 1, "one arg", "celery.task.proj")]


def test_lines_past_the_caps_are_counted_and_noted_when_the_attempt_ends(captured) -> None:
    handler, publisher = captured
    handler.start(REQUEST)
    log = logging.getLogger("proj")
    for text in ("a" * 10, "b" * 10, "c" * 45, "d" * 10, "e" * 10):  # the third passes 60 bytes; 3 lines at most
        log.warning(text)
    handler.stop()
    kept = [r["message"] for r in publisher.records if "message" in r]
    assert kept == ["a" * 10, "b" * 10, "d" * 10]
    note = publisher.records[-1]
    assert (note["seq"], note["omitted"], note["omitted_bytes"]) == (4, 2, 55)


def test_a_traceback_travels_with_its_line_and_a_long_line_is_cut(captured) -> None:
    handler, publisher = captured
    handler.max_bytes = 10**6
    handler.start(REQUEST)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("proj").exception("it failed")
    logging.getLogger("proj").info("x" * 10_000)
    handler.stop()
    assert publisher.records[0]["message"].startswith("it failed\nTraceback")
    assert "ValueError: boom" in publisher.records[0]["message"]
    assert len(publisher.records[1]["message"]) == logs.LINE_MAXSIZE
