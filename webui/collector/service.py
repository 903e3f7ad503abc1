"""The collector: leadership, the subscription with reconnects, gaps, and its helper loops.

`Collector.run()` is a loop of terms: start a writer (which waits for the leader lock), and once it leads,
subscribe to the broker until told to stop or until the writer loses leadership. Broker errors are retried
with capped exponential backoff and full jitter; each outage is recorded as a gap and followed by a
reconciliation. When a collector takes over from a dead one, the time since the previous leader's last
heartbeat is recorded as a gap too: the store never pretends it saw what it did not.

With a durable event queue (`event_queue`, RabbitMQ: webui.collector.event_queue) a downtime or a broker
disconnection is not a gap by itself: the queue holds the events meanwhile. Whether it kept them all is known
only once connected again; then the gap is recorded (from when reading stopped) only if the queue was missing or
had lost its contents, and whatever it dropped past its bounds is recorded as a gap with the events lost.
Until the backlog is read, the store is behind rather than blind: the heartbeat sweep waits, so workers are not
taken offline (and their tasks not marked lost) for heartbeats that are still in the queue.
"""
from __future__ import annotations

import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from typing import Any

from amqp.exceptions import AMQPError
from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError
from peewee import Database
from redis.exceptions import RedisError

from webui import broadcasts
from webui.agent.transport import is_amqp
from webui.alerts import runner as alert_runner
from webui.beat import watcher as beat_watcher
from webui.celery_app import safe_broker_url
from webui.collector import inspector, queue_sampler, reconcile
from webui.collector.agent_queue import AgentQueueReader
from webui.collector.agent_stream import AgentStreamOptions, AgentStreamReader
from webui.collector.event_queue import GAP_QUEUE_DROPPED, DropReport, EventQueueOptions, QueueHooks, Resume
from webui.collector.leader import leader_lock
from webui.collector.stream_trim import GAP_AGENT_TRIMMED, Trimmed
from webui.collector.subscriber import MalformedCounter, make_subscriber, supports_event_queue
from webui.collector.writer import GAP_BROKER, GAP_COLLECTOR_DOWN, CollectorStats, Writer
from webui.detect import lost_marker
from webui.privacy import SETTING_NAMES, Redactor
from webui.settings import mask_url_password
from webui.store import metrics_checkpoint, retention
from webui.store.database import bind_models, open_database

log = logging.getLogger(__name__)

# What a broker outage raises (kombu wraps its transports' errors in OperationalError, redis-py and amqp in
# their own ConnectionError or OSError subclasses).
BROKER_ERRORS = (ConnectionError, OSError, TimeoutError, KombuOperationalError, RedisError, AMQPError)
BACKOFF_START = 1.0
BACKOFF_CAP = 30.0


def backoff_delays(start: float = BACKOFF_START, cap: float = BACKOFF_CAP):
    """Capped exponential backoff with full jitter: many monitors must not reconnect in lockstep."""
    ceiling = start
    while True:
        yield random.uniform(start / 2, ceiling)
        ceiling = min(ceiling * 2, cap)


class Collector:
    def __init__(self, settings: Any, app: Celery, db: Database | None = None) -> None:
        self.settings = settings
        self.app = app
        self.db = db or open_database(settings.database)
        bind_models(self.db)  # the beat board, detectors and alert rules read through the models
        self.stats = CollectorStats(leader=f"{socket.gethostname()}:{os.getpid()}", broker=_broker_uri(app))
        self.redactor = Redactor.from_settings(settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._helpers: list[threading.Thread] = []
        self.writer: Writer | None = None
        self.event_queue = EventQueueOptions.from_settings(settings)
        if self.event_queue is not None and not supports_event_queue(app):
            log.warning("event_queue is set but the broker is not RabbitMQ (AMQP): ignored. Redis PUB/SUB cannot "
                        "buffer events for a collector that is not listening; a downtime is recorded as a gap "
                        "and repaired by reconciliation")
            self.event_queue = None
        # The workers' companion (webui.agent): its stream is read alongside the events when `agent_url` is set.
        self.agent_stream = AgentStreamOptions.from_settings(settings)
        # With the durable queue: since when, and why, events were not read (kind, reason, since); see above.
        self._behind: tuple[str, str, float] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        # The subscriber and the writer are both busy Python threads at high event rates; at the default 5 ms
        # switch interval they hand the GIL back and forth so often that the writer loses a large share of
        # its time to the switching itself. 20 ms halves that; page requests wait at most as long.
        sys.setswitchinterval(max(sys.getswitchinterval(), 0.02))
        self._thread = threading.Thread(target=self.run, name="webui-collector", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Stop subscribing and flush what was received before returning."""
        if self.event_queue is not None and self.writer is not None:
            # Heartbeats sent from now on wait in the queue for the next collector: silence proves nothing.
            self.writer.sweeps_paused = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def leading(self) -> bool:
        return self.writer is not None and self.writer.leading.is_set() and self.writer.is_alive()

    def run(self) -> None:
        while not self._stop.is_set():
            writer = self._new_writer()
            try:
                self._term(writer)
            finally:
                writer.stop()
                self.stats.connected = False
            if writer.failed is not None and not self._stop.is_set():
                log.warning("collector stepped down: %s", writer.failed)
                self._stop.wait(1.0)

    def _new_writer(self) -> Writer:
        s = self.settings
        self.writer = Writer(
            self.db, self.redactor, self.stats, lock=leader_lock(self.db),
            batch_interval=s.batch_interval, batch_size=s.batch_size,
            offline_heartbeats=s.worker_offline_heartbeats, no_task_events_warning=s.no_task_events_warning,
            pair_sources=self.agent_stream is not None)
        self.writer.sweeps_paused = self.event_queue is not None  # until the queue's backlog is read
        self.writer.start()
        return self.writer

    def _term(self, writer: Writer) -> None:
        while not writer.leading.wait(0.5):
            if self._stop.is_set() or not writer.is_alive():
                return
        log.info("collector leading for %s (broker %s)", self.stats.leader, self.stats.broker)
        self._behind = None
        if writer.previous_heartbeat is not None:
            reason = "the collector was not running (restart, crash or handover between collectors)"
            if self.event_queue is None:
                writer.open_gap(GAP_COLLECTOR_DOWN, reason, started_at=writer.previous_heartbeat)
            else:
                self._behind = (GAP_COLLECTOR_DOWN, reason, writer.previous_heartbeat)
        self._helpers = self._start_helpers(writer)
        try:
            self._subscribe_until_stopped(writer)
        finally:
            # Reconciliations included: none may touch the database after this term's writer is gone.
            for helper in self._helpers:
                helper.join(self.settings.inspect_timeout + 5.0)

    # -- the subscription ------------------------------------------------------------------------------
    def _subscribe_until_stopped(self, writer: Writer) -> None:
        delays = backoff_delays()
        on_malformed = MalformedCounter(self.stats)

        def should_stop() -> bool:
            return self._stop.is_set() or not writer.is_alive()

        def on_connected(resume: Resume | None = None) -> None:
            nonlocal delays
            delays = backoff_delays()
            self._on_connected(writer, resume)

        reader = {n: getattr(self.settings, n) for n in SETTING_NAMES} if self.settings.reader_process else None
        event_queue = None
        if self.event_queue is not None:
            event_queue = (self.event_queue, QueueHooks(
                caught_up=lambda: self._caught_up(writer), dropped=lambda report: self._record_drops(writer, report),
                writer_alive=writer.is_alive, commit_soon=writer.commit_soon))
        while not should_stop():
            subscriber = make_subscriber(self.app, on_malformed, reader, writer.dropped_upstream, event_queue)
            try:
                subscriber.run(writer.put_events, on_connected, should_stop)
            except Exception as exc:  # noqa: BLE001 - any broker failure: record, back off, reconnect
                self._on_disconnected(writer, exc)
                self._stop.wait(next(delays))

    def _on_connected(self, writer: Writer, resume: Resume | None = None) -> None:
        now = time.time()
        self.stats.connected = True
        self.stats.connected_since = now
        writer.close_gap(GAP_COLLECTOR_DOWN, now)
        writer.close_gap(GAP_BROKER, now)
        # Every (re)connection follows a blind interval, even the first (tasks already running), unless the
        # durable queue kept everything.
        repair = resume is None or self._on_resumed(writer, resume, now)
        if self.settings.reconcile and repair:
            reconciler = threading.Thread(target=self._reconcile, args=(writer, now), name="webui-reconcile",
                                          daemon=True)
            self._helpers.append(reconciler)
            reconciler.start()
        writer.previous_heartbeat = None
        self.stats.last_error = None

    def _on_resumed(self, writer: Writer, resume: Resume, now: float) -> bool:
        """Record what the durable queue could not keep while it was not read; True: repair states after it."""
        behind, self._behind = self._behind, None
        if not resume.intact:
            if behind is None:  # the first start: nothing was expected of the queue yet
                log.info("%s; it holds the events from now on", resume.why)
            else:
                log.warning("%s: events sent meanwhile are missing", resume.why)
                kind, reason, since = behind
                writer.open_gap(kind, f"{reason}; {resume.why}", started_at=since)
                writer.close_gap(kind, now)
        elif behind is not None:
            log.info("the durable event queue kept the events sent since %s (%s)",
                     time.strftime("%H:%M:%S", time.localtime(behind[2])), behind[1])
        if resume.dropped is not None:
            self._record_drops(writer, resume.dropped)
        return not resume.intact or resume.dropped is not None

    def _record_drops(self, writer: Writer, report: DropReport) -> None:
        """What the durable queue dropped past its bounds: a gap over their times, with the events lost."""
        assert self.event_queue is not None
        reason = report.describe(self.event_queue)
        log.warning("%s", reason)
        now = time.time()
        self.stats.events_dropped += report.events
        started = report.first if report.first is not None and report.first <= now else now
        ended = now if report.full or report.last is None else min(max(report.last, started), now)
        writer.open_gap(GAP_QUEUE_DROPPED, reason, started_at=started)
        writer.close_gap(GAP_QUEUE_DROPPED, ended, lost=report.events)

    def _record_trimmed(self, writer: Writer, trimmed: Trimmed) -> None:
        """Companion records the stream trimmed before they were read: a gap over their times, with the loss."""
        assert self.agent_stream is not None
        reason = trimmed.describe(self.agent_stream.stream)
        log.warning("%s", reason)
        self.stats.events_dropped += trimmed.count
        started, ended = trimmed.span(time.time())
        writer.open_gap(GAP_AGENT_TRIMMED, reason, started_at=started)
        writer.close_gap(GAP_AGENT_TRIMMED, ended, lost=trimmed.count)

    def _caught_up(self, writer: Writer) -> None:
        writer.sweeps_paused = False

    def _on_disconnected(self, writer: Writer, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, BROKER_ERRORS):
            # Not the broker's fault: say so, with the traceback, but keep retrying like any outage.
            log.error("unexpected error while receiving events; retrying", exc_info=exc)
        if self.stats.connected and self.event_queue is not None:
            log.warning("lost the broker connection (%s); reconnecting (the durable event queue holds the "
                        "events meanwhile)", reason)
            self._behind = self._behind or (GAP_BROKER, f"broker connection lost: {reason}", time.time())
            writer.sweeps_paused = True
        elif self.stats.connected:
            log.warning("lost the broker connection (%s); reconnecting", reason)
            writer.open_gap(GAP_BROKER, f"broker connection lost: {reason}")
        else:
            log.warning("cannot connect to the broker %s (%s); retrying", self.stats.broker, reason)
        self.stats.connected = False
        self.stats.last_error = reason

    def _reconcile(self, writer: Writer, gap_ended: float) -> None:
        try:
            reconcile.reconcile(self.app, self.db, writer, timeout=self.settings.inspect_timeout,
                                gap_ended=gap_ended)
        except Exception as exc:  # noqa: BLE001 - a failed repair leaves states as they were, never worse
            log.warning("reconciliation after the gap failed: %s", exc)

    # -- helper loops ----------------------------------------------------------------------------------
    def _start_helpers(self, writer: Writer) -> list[threading.Thread]:
        helpers = []
        if self.settings.enable_events:
            helpers.append(threading.Thread(target=self._enable_events_loop, args=(writer,),
                                            name="webui-enable-events", daemon=True))
        helpers.append(threading.Thread(target=self._inspect_loop, args=(writer,), name="webui-inspector",
                                        daemon=True))
        if self.agent_stream is not None:
            helpers.append(threading.Thread(target=self._agent_stream_loop, args=(writer,),
                                            name="webui-agent-stream", daemon=True))
        helpers.append(threading.Thread(target=self._queue_sample_loop, args=(writer,),
                                        name="webui-queue-sampler", daemon=True))
        helpers.append(threading.Thread(target=self._beat_watch_loop, args=(writer,), name="webui-beat-watcher",
                                        daemon=True))
        helpers.append(threading.Thread(target=self._lost_marker_loop, args=(writer,), name="webui-lost-marker",
                                        daemon=True))
        helpers.append(threading.Thread(target=self._alert_loop, args=(writer,), name="webui-alerts", daemon=True))
        helpers.append(threading.Thread(target=self._prune_loop, args=(writer,), name="webui-pruner", daemon=True))
        helpers.append(threading.Thread(target=self._metrics_checkpoint_loop, args=(writer,),
                                        name="webui-metrics-checkpoint", daemon=True))
        for helper in helpers:
            helper.start()
        return helpers

    def _inspect_loop(self, writer: Writer) -> None:
        """Keep `worker_inspection` fresh for the workers pages (webui.collector.inspector)."""
        stats = self.stats
        inspector.inspect_loop(
            self.app, self.db, writer, self.redactor, interval=self.settings.inspect_interval,
            timeout=self.settings.inspect_timeout, stop=self._stop,
            connected_since=lambda: stats.connected_since if stats.connected else None)

    def _agent_stream_loop(self, writer: Writer) -> None:
        """Read the companion's stream or queue while leading (webui.collector.agent_stream, agent_queue); retry
        failures."""
        assert self.agent_stream is not None
        # The workers write to a Redis Stream or, with an amqp:// URL, a RabbitMQ queue: one reader each.
        kind = AgentQueueReader if is_amqp(self.agent_stream.url) else AgentStreamReader
        reader = kind(self.agent_stream, MalformedCounter(self.stats), writer.is_alive,
                      batch_size=self.settings.batch_size,
                      on_trimmed=lambda trimmed: self._record_trimmed(writer, trimmed))
        delays = backoff_delays()

        def should_stop() -> bool:
            return self._stop.is_set() or not writer.is_alive()

        while not should_stop():
            try:
                reader.run(writer.put_events, should_stop)
            except Exception as exc:  # noqa: BLE001 - Redis down or refusing: the stream keeps the records
                log.warning("cannot read the companion stream %s (%s: %s); retrying", self.agent_stream.stream,
                            type(exc).__name__, exc)
                self._stop.wait(next(delays))
            else:
                delays = backoff_delays()

    def _queue_sample_loop(self, writer: Writer) -> None:
        """Store each queue's depth every `queue_sample_interval` (webui.collector.queue_sampler)."""
        queue_sampler.sample_loop(self.app, self.db, writer, interval=self.settings.queue_sample_interval,
                                  stop=self._stop, connected=lambda: self.stats.connected)

    def _prune_loop(self, writer: Writer) -> None:
        """Delete what the retention settings no longer keep, every `prune_interval` (webui.store.retention)."""
        retention.prune_loop(self.db, self.settings, stop=self._stop, alive=writer.is_alive)

    def _metrics_checkpoint_loop(self, writer: Writer) -> None:
        """Sum /metrics' settled rows once for every process, every minute (webui.store.metrics_checkpoint)."""
        metrics_checkpoint.advance_loop(self.db, self.settings, stop=self._stop, alive=writer.is_alive)

    def _beat_watch_loop(self, writer: Writer) -> None:
        """Read beat schedules and match their fires every `beat_interval` (webui.beat.watcher)."""
        beat_watcher.watch_loop(self.app, self.db, writer, self.redactor, self.settings, stop=self._stop,
                                connected=lambda: self.stats.connected)

    def _alert_loop(self, writer: Writer) -> None:
        """Detectors, alert rules and incidents every `detect_interval`; notifications (webui.alerts.runner)."""
        alert_runner.alert_loop(self.db, self.settings, self.app, stop=self._stop, alive=writer.is_alive,
                                app_timezone=str(self.app.conf.timezone or "UTC"))

    def _lost_marker_loop(self, writer: Writer) -> None:
        """Mark LOST the tasks of workers that died running them (webui.detect.lost_marker)."""
        lost_marker.mark_lost_loop(self.db, writer, self.settings, stop=self._stop, alive=writer.is_alive,
                                   app=self.app)

    def _enable_events_loop(self, writer: Writer) -> None:
        """Broadcast `enable_events` so workers started without -E send task events (as Flower does)."""
        interval = self.settings.enable_events_interval
        while not self._stop.is_set() and writer.is_alive():
            if self.stats.connected:
                try:
                    broadcasts.broadcast(self.app, "enable_events")
                except Exception as exc:  # noqa: BLE001 - the subscription loop reports broker trouble
                    log.debug("enable_events broadcast failed: %s", exc)
            self._stop.wait(interval)


def _broker_uri(app: Celery) -> str:
    try:
        return safe_broker_url(app)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported when connecting
        return mask_url_password(str(app.conf.broker_url))


def run_collector(settings: Any, app: Celery) -> None:
    """`webui collect`: run the collector in the foreground until SIGINT or SIGTERM, then flush and exit."""
    collector = Collector(settings, app)
    stopped = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: flushing and stopping", signal.Signals(signum).name)
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    collector.start()
    stopped.wait()
    collector.stop()
