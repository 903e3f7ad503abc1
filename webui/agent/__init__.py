"""The worker companion: Celery's signals to a durable Redis Stream or RabbitMQ queue the collector reads
(docs/companion.md).

    import webui.agent
    webui.agent.install(app)  # or app.conf.webui_agent_url = "redis://…", or env WEBUI_AGENT_URL

In every process of a worker (and of anything that publishes tasks with this app), each transition of a task
becomes a record shaped like the Celery event of the same transition (webui.agent.records), whether or not task
events are on; the collector merges records and events by the same rules, and one transition reported by both
is counted once. Publishing never blocks nor raises into a task (webui.agent.publisher).

Importable without Flask, peewee or any database driver: worker images need only Celery (kombu) and redis-py.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import Celery, signals

from webui.agent import beat, logs, records
from webui.agent.presence import Presence
from webui.agent.publisher import Publisher
from webui.agent.transport import is_redis

DEFAULT_STREAM = "webui:agent"
DEFAULT_MAX_LENGTH = 100_000  # stream entries kept: ~60 MB of Redis memory at ~600 bytes a record
DEFAULT_BUFFER = 10_000  # records one process buffers while Redis is slow or down
HEARTBEAT_INTERVAL = 2.0  # seconds, as Celery's own worker heartbeat
PROGRESS_EVERY = 1.0  # seconds: at most one progress record a task per interval (the last one always goes)
# task-sent records one thread holds between before_task_publish and after_task_publish. One is all a publish
# needs; more allow a publish from inside another's signal handler, and bound what failed publishes leave.
HELD_PUBLISHES = 8

_SETTINGS = {"url": None, "stream": DEFAULT_STREAM, "max_length": DEFAULT_MAX_LENGTH, "buffer_size": DEFAULT_BUFFER,
             "capture_logs": False, "log_lines": logs.DEFAULT_MAX_LINES, "log_bytes": logs.DEFAULT_MAX_BYTES}


def install(app: Celery, url: str | None = None, **options: Any) -> Publisher:
    """Switch the companion on for `app`; returns its publisher (its `dropped` and `sent` counters).

    `url`: the Redis or RabbitMQ to write to (default: `webui_agent_url`, WEBUI_AGENT_URL, else the app's broker;
    ValueError for another scheme). `options`: `stream` (the Redis Stream's key or the RabbitMQ queue's name),
    `max_length`, `buffer_size` (also `webui_agent_<name>` in app.conf and
    WEBUI_AGENT_<NAME>); `capture_logs=True` ships what each task logs, capped per attempt at `log_lines` lines
    and `log_bytes` bytes (webui.agent.logs).
    """
    current = getattr(app, "_webui_agent", None)
    if current is not None:
        return current
    settings = {name: _option(app, name, options.get(name, default)) for name, default in _SETTINGS.items()}
    target = url or settings["url"] or str(app.conf.broker_url or "")
    publisher = Publisher(target, str(settings["stream"]), int(settings["max_length"]), int(settings["buffer_size"]))
    Hooks(app, publisher).connect()
    if _enabled(settings["capture_logs"]):
        logs.install(app, publisher, int(settings["log_lines"]), int(settings["log_bytes"]))
    app._webui_agent = publisher
    return publisher


def install_from_settings(app: Celery) -> Publisher | None:
    """Install when `webui_agent_url` (app.conf) or WEBUI_AGENT_URL says so: the one-setting way."""
    if _option(app, "url", None):
        return install(app)
    return None


_last_progress: dict[str, float] = {}  # task id -> monotonic time of its last progress record (this process)
_promised: dict[str, float] = {}  # task id -> the promise it last sent, seconds (this process)
_log = logging.getLogger(__name__)


def report_progress(current: float, total: float | None = None, message: str | None = None, *,
                    expect_every: float | None = None) -> bool:
    """From inside a task: how far it got (`current` of `total`), shown as a progress bar with an estimated
    finish on the task page. At most one record a second per task, and always the one where current reaches
    total, or that makes or changes a promise. `expect_every`: promise the next report within that many seconds,
    as `expect_progress` does. Returns whether it was recorded: False outside a task, without the companion, or
    rate-limited."""
    every = None if expect_every is None else promise_seconds(expect_every)
    publisher, request = _running_task()
    if publisher is None:
        return False
    now = time.monotonic()
    finished = total is not None and current >= total
    changes_promise = every is not None and _promised.get(request.id) != every
    if not (finished or changes_promise) and now - _last_progress.get(request.id, -PROGRESS_EVERY) < PROGRESS_EVERY:
        return False
    _last_progress[request.id] = now
    if finished:
        _last_progress.pop(request.id, None)
    if every is not None:
        _promised[request.id] = every
    publisher.put(records.progress(request, current, total, message, every))
    return True


def expect_progress(every: float | None) -> bool:
    """From inside a task: promise a progress report (`report_progress`) at least every `every` seconds from
    now on, so the UI calls the task stalled exactly when the promise is broken, instead of by a threshold guessed
    from its name's runtimes; None withdraws the promise (before a phase that cannot report). Also a task option:
    `@app.task(webui_progress_every=30)` promises from the start of every run. Raises ValueError for an
    interval under a second (the reports' rate limit); returns whether it was recorded (False outside a task or
    without the companion)."""
    seconds = None if every is None else promise_seconds(every)
    publisher, request = _running_task()
    if publisher is None:
        return False
    _promise(publisher, request, seconds)
    return True


def promise_seconds(every: Any) -> float:
    """A promised interval, checked: a number of seconds, at least PROGRESS_EVERY (a shorter one could not be
    kept: report_progress sends at most one record per PROGRESS_EVERY)."""
    if isinstance(every, bool) or not isinstance(every, int | float) or not every >= PROGRESS_EVERY:
        raise ValueError(f"a progress promise is a number of seconds, at least {PROGRESS_EVERY:g}; not {every!r}")
    return float(every)


def _promise(publisher: Publisher, request: Any, every: float | None) -> None:
    if every is None:
        _promised.pop(request.id, None)
    else:
        _promised[request.id] = every
    publisher.put(records.promise(request, every))


def _running_task() -> tuple[Any, Any]:
    """The companion's publisher and the request of the task running in this thread, or (None, None)."""
    from celery import current_task

    task = current_task._get_current_object() if current_task else None
    publisher = getattr(getattr(task, "app", None), "_webui_agent", None)
    request = getattr(task, "request", None)
    if publisher is None or request is None or not isinstance(getattr(request, "id", None), str):
        return None, None
    return publisher, request


def _forget(task_id: str) -> None:
    """The task ended in this process: its rate limit and promise go with it."""
    _last_progress.pop(task_id, None)
    _promised.pop(task_id, None)


def _enabled(value: Any) -> bool:
    """A switch given as a bool, or as text by an environment variable."""
    return value.strip().lower() in ("1", "true", "yes", "on") if isinstance(value, str) else bool(value)


def _option(app: Celery, name: str, default: Any) -> Any:
    env = os.environ.get(f"WEBUI_AGENT_{name.upper()}")
    if env:
        return env
    value = app.conf.get(f"webui_agent_{name}")
    return default if value is None else value


class Hooks:
    """The signal receivers of one app. Each builds a record and hands it to the publisher; none may raise."""

    def __init__(self, app: Celery, publisher: Publisher) -> None:
        self.app = app
        self.publisher = publisher
        self.hostname: str | None = None  # the worker's nodename, once this process is a worker's
        self._started: dict[str, float] = {}  # task id -> monotonic start, for task-succeeded's runtime
        self._heart: threading.Event | None = None
        self.presence: Presence | None = None  # the worker's running-task mark (webui.agent.presence)
        self._publishing = threading.local()  # .sent: {task id: its task-sent record} until the broker took it

    def connect(self) -> None:
        # weak=False: the bound methods would otherwise vanish with nothing else referring to them.
        for signal, receiver in (
                (signals.before_task_publish, self.on_publish), (signals.after_task_publish, self.on_published),
                (signals.task_received, self.on_received),
                (signals.task_prerun, self.on_prerun), (signals.task_postrun, self.on_postrun),
                (signals.task_success, self.on_success),
                (signals.task_failure, self.on_failure), (signals.task_retry, self.on_retry),
                (signals.task_revoked, self.on_revoked), (signals.task_rejected, self.on_rejected),
                (signals.task_unknown, self.on_unknown), (signals.worker_ready, self.on_worker_ready),
                (signals.worker_shutdown, self.on_worker_shutdown), (signals.beat_init, self.on_beat_init)):
            signal.connect(_guarded(receiver), weak=False)

    def _mine(self, task: Any) -> bool:
        return getattr(task, "app", self.app) is self.app

    def on_publish(self, sender: Any = None, headers: Any = None, exchange: Any = None, routing_key: Any = None,
                   **_: Any) -> None:
        """`before_task_publish`: the task-sent record is made now (the headers and the beat stamp are at hand)
        but held until `after_task_publish`. A publish that raises (broker down, an argument the serializer
        refuses) sent nothing, and its record would leave a task PENDING forever; it is never sent."""
        if isinstance(headers, dict):
            item = records.sent(headers, exchange, routing_key)
            if item is not None:
                held = self._held()
                while len(held) >= HELD_PUBLISHES:  # the oldest publishes on this thread raised: never sent
                    held.pop(next(iter(held)))
                held[item["uuid"]] = {**item, **(beat.current_stamp() or {})}
                beat.note_sent(item["uuid"])

    def on_published(self, sender: Any = None, headers: Any = None, **_: Any) -> None:
        """`after_task_publish`, on the publishing thread once the broker has the message."""
        uuid = headers.get("id") if isinstance(headers, dict) else None
        item = self._held().pop(uuid, None) if isinstance(uuid, str) else None
        if item is not None:
            self.publisher.put(item)

    def _held(self) -> dict[str, dict[str, Any]]:
        held = getattr(self._publishing, "sent", None)
        if held is None:
            held = self._publishing.sent = {}
        return held

    def on_received(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        self.publisher.put(records.received(request, self._worker_name(sender)))

    def on_prerun(self, sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
        if task is None or not self._mine(task):
            return
        self._started[task.request.id] = time.monotonic()
        self.publisher.put(records.task_record("task-started", task.request))
        every = getattr(task, "webui_progress_every", None)
        if every is not None:
            self._promise_from_option(task, every)

    def _promise_from_option(self, task: Any, every: Any) -> None:
        """`@app.task(webui_progress_every=N)`: the run promises from its start, right after task-started."""
        try:
            seconds = promise_seconds(every)
        except ValueError as exc:
            _log.warning("%s: webui_progress_every ignored: %s", task.name, exc)
            return
        _promise(self.publisher, task.request, seconds)

    def on_postrun(self, sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
        if isinstance(task_id, str):
            _forget(task_id)

    def on_success(self, sender: Any = None, result: Any = None, **_: Any) -> None:
        if sender is None or not self._mine(sender):
            return
        request = sender.request
        started = self._started.pop(request.id, None)
        runtime = time.monotonic() - started if started is not None else None
        self.publisher.put(records.succeeded(request, result, runtime))

    def on_failure(self, sender: Any = None, exception: Any = None, einfo: Any = None, **_: Any) -> None:
        if sender is None or not self._mine(sender):
            return
        self._started.pop(sender.request.id, None)
        self.publisher.put(records.failed("task-failed", sender.request, exception, _traceback(einfo)))

    def on_retry(self, sender: Any = None, request: Any = None, reason: Any = None, einfo: Any = None,
                 **_: Any) -> None:
        if request is None:
            return
        self._started.pop(request.id, None)
        self.publisher.put(records.failed("task-retried", request, reason, _traceback(einfo)))

    def on_revoked(self, sender: Any = None, request: Any = None, terminated: Any = False, signum: Any = None,
                   expired: Any = False, **_: Any) -> None:
        if request is not None:
            self.publisher.put(records.revoked(request, self.hostname or getattr(request, "hostname", None),
                                               terminated, signum, expired))

    def on_rejected(self, sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
        item = records.from_message("task-rejected", message, self._worker_name(sender), requeue=False,
                                    exception=None if exc is None else repr(exc))
        if item is not None:
            self.publisher.put(item)

    def on_unknown(self, sender: Any = None, name: Any = None, id: Any = None, message: Any = None,
                   exc: Any = None, **_: Any) -> None:
        item = records.from_message("task-unknown", message, self._worker_name(sender), name=name,
                                    exception=None if exc is None else repr(exc))
        if item is not None:
            self.publisher.put(item)

    def on_beat_init(self, sender: Any = None, **_: Any) -> None:
        """In beat: stamp each fire with its entry and due time (webui.agent.beat)."""
        scheduler = getattr(sender, "scheduler", None)
        if scheduler is not None and getattr(scheduler, "app", self.app) is self.app:
            beat.hook(scheduler, self.publisher)

    def on_worker_ready(self, sender: Any = None, **_: Any) -> None:
        self.hostname = self._worker_name(sender)
        if self.hostname is None:
            return
        self.publisher.put(records.worker("worker-online", self.hostname, HEARTBEAT_INTERVAL))
        if is_redis(self.publisher.url):  # marks are Redis keys with a TTL: RabbitMQ has no such thing
            self.presence = Presence(self.publisher.url, self.hostname, HEARTBEAT_INTERVAL)
            self.presence.refresh()
        self._heart = threading.Event()
        threading.Thread(target=self._beat, args=(self._heart,), name="webui-agent-heartbeat", daemon=True).start()

    def on_worker_shutdown(self, sender: Any = None, **_: Any) -> None:
        if self._heart is not None:
            self._heart.set()
        if self.presence is not None:
            self.presence.stopped()
        if self.hostname is not None and os.getpid() == self.publisher._pid:
            self.publisher.put(records.worker("worker-offline", self.hostname, HEARTBEAT_INTERVAL))
            self.publisher.flush()

    def _beat(self, stop: threading.Event) -> None:
        """The worker's liveness from the stream, with the main process's drop count; its running-task mark."""
        while not stop.wait(HEARTBEAT_INTERVAL):
            if self.presence is not None:
                self.presence.refresh()
            if self.hostname is not None:
                self.publisher.put(records.worker("worker-heartbeat", self.hostname, HEARTBEAT_INTERVAL,
                                                  agent_dropped=self.publisher.dropped))

    def _worker_name(self, sender: Any) -> str | None:
        name = getattr(sender, "hostname", None)
        return name if isinstance(name, str) else self.hostname


def _traceback(einfo: Any) -> str | None:
    text = getattr(einfo, "traceback", None)
    return text if isinstance(text, str) else None


def _guarded(receiver: Any) -> Any:
    """The receiver, made unable to raise: a monitoring hook must never fail a task or a worker."""
    def receive(*args: Any, **kwargs: Any) -> None:
        try:
            receiver(*args, **kwargs)
        except Exception:  # noqa: BLE001 - see the docstring
            receiver.__self__.publisher.dropped += 1
    receive.__name__ = f"webui_agent_{receiver.__name__}"
    return receive


__all__ = ["install", "install_from_settings", "report_progress", "expect_progress", "Publisher", "DEFAULT_STREAM"]
