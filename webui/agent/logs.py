"""Task logs: what a task logs while it runs, captured per attempt and shipped as records (docs/companion.md).

Switched on with `install(app, capture_logs=True)` (`webui_agent_capture_logs`, WEBUI_AGENT_CAPTURE_LOGS). One
handler sits on the root logger and on `celery.task` (Celery's task loggers do not propagate to the root). It
keeps a record only when it is emitted in a thread that is running a task, between `task_prerun` and
`task_postrun`: each line becomes a `task-log` record through the publisher, so it costs the task a format and a
deque append, never I/O. Per attempt at most `log_lines` lines and `log_bytes` bytes are kept; past either the
rest is counted, and at `task_postrun` one `task-log` record with `omitted` says how much was not kept. Lines
already sent survive the worker's death: a SIGKILLed attempt keeps what it logged up to the last flush
(publisher.FLUSH_INTERVAL).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from celery import Celery, signals

from webui.agent import records
from webui.agent.publisher import Publisher

DEFAULT_MAX_LINES = 1000  # lines kept per attempt
DEFAULT_MAX_BYTES = 100_000  # bytes (UTF-8) of messages kept per attempt
LINE_MAXSIZE = 4000  # characters of one line (a traceback included): longer lines are cut
CAPTURED_LOGGERS = ("", "celery.task")  # the root logger, and Celery's task loggers' parent
# The worker's own "Task … succeeded in 0.01s" and "retry: …" lines: the timeline shows those outcomes already.
SKIPPED_LOGGERS = frozenset({"celery.app.trace"})


@dataclass
class Capture:
    """One running attempt's log: how much it kept, how much it left out."""

    request: Any
    lines: int = 0
    size: int = 0
    omitted: int = 0
    omitted_bytes: int = 0


class TaskLogHandler(logging.Handler):
    def __init__(self, publisher: Publisher, max_lines: int = DEFAULT_MAX_LINES,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))  # the message and its traceback, nothing else
        self.publisher = publisher
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._captures: dict[int, Capture] = {}  # thread ident -> the attempt that thread runs
        self._last: logging.LogRecord | None = None

    def start(self, request: Any) -> None:
        self._captures[threading.get_ident()] = Capture(request)

    def stop(self) -> None:
        capture = self._captures.pop(threading.get_ident(), None)
        if capture is not None and capture.omitted:
            self.publisher.put(records.log_omitted(capture.request, capture.lines, capture.omitted,
                                                   capture.omitted_bytes))

    def emit(self, record: logging.LogRecord) -> None:
        capture = self._captures.get(threading.get_ident())
        # A record that propagates from celery.task to the root reaches this handler twice: keep it once.
        if capture is None or record is self._last or record.name in SKIPPED_LOGGERS:
            return
        self._last = record
        try:
            message = self.format(record)[:LINE_MAXSIZE]
            size = len(message.encode("utf-8", "replace"))
            if capture.lines >= self.max_lines or capture.size + size > self.max_bytes:
                capture.omitted += 1
                capture.omitted_bytes += size
                return
            capture.lines += 1
            capture.size += size
            self.publisher.put(records.log_line(capture.request, capture.lines, record, message))
        except Exception:  # noqa: BLE001 - a log line must never fail the task that wrote it
            self.publisher.dropped += 1


def install(app: Celery, publisher: Publisher, max_lines: int, max_bytes: int) -> TaskLogHandler:
    """Attach the handler and hook `task_prerun`/`task_postrun` of `app`'s tasks."""
    handler = TaskLogHandler(publisher, max_lines, max_bytes)

    def mine(task: Any) -> bool:
        return task is not None and getattr(task, "app", app) is app

    def on_prerun(sender: Any = None, task: Any = None, **_: Any) -> None:
        if mine(task):
            attach(handler)
            handler.start(task.request)

    def on_postrun(sender: Any = None, task: Any = None, **_: Any) -> None:
        if mine(task):
            handler.stop()

    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_postrun.connect(on_postrun, weak=False)
    return handler


def attach(handler: TaskLogHandler) -> None:
    """On the captured loggers, at each task: the worker sets up its logging after the app's import (and, with
    worker_hijack_root_logger, empties the root logger's handlers), so a handler added at install would be gone."""
    for name in CAPTURED_LOGGERS:
        logger = logging.getLogger(name)
        if handler not in logger.handlers:
            logger.addHandler(handler)
