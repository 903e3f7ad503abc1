"""Receive Celery's event messages from the broker and hand them over undecoded-but-parsed, fast.

Two implementations with one shape, `run(handoff, on_connected, should_stop)`, which returns when asked to
stop and raises on a broker error (the service reconnects with backoff):

- `RedisSubscriber`: a raw PSUBSCRIBE through redis-py. The connection, the channel names and the prefixes
  come from kombu's own Redis channel for the app's broker URL and `broker_transport_options`
  (`fanout_prefix`, `fanout_patterns`, `global_keyprefix`, Sentinel), so we listen exactly where the workers
  publish (celery-facts §1.6, §2.4). About 1.6x the throughput of Celery's Receiver.
- `ProcessSubscriber`: the same Redis subscription read, decoded, validated and masked in a reader process
  (webui/collector/reader.py), so the collector process only merges and writes. The default for Redis.
- `KombuSubscriber`: every other transport (RabbitMQ…): a kombu consumer on the queue Celery's own
  `EventReceiver` would declare, with `no_ack`, reading raw message bodies.
- `DurableQueueSubscriber` (webui.collector.event_queue): RabbitMQ with `event_queue` set: a durable, bounded,
  named queue, acknowledged only once the writer committed the events, so a restart loses nothing.

Neither applies Celery's Receiver normalisation: timestamps stay as sent (decode.py says why).
"""
from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol

from celery import Celery
from redis.backoff import NoBackoff
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from webui.collector import reader as reader_process
from webui.collector.decode import SAFE_CONTENT_TYPES, MalformedEvent, decode_body, decode_envelope
from webui.collector.event_queue import DurableQueueSubscriber, EventQueueOptions, QueueHooks

log = logging.getLogger(__name__)

Handoff = Callable[..., None]  # (events, received_at[, prepared]) -> None
_POLL = 0.5  # seconds between checks of should_stop while the channel is idle


class Subscriber(Protocol):
    def run(self, handoff: Handoff, on_connected: Callable[..., None], should_stop: Callable[[], bool]) -> None:
        ...


class MalformedCounter:
    """Counts undecodable messages and logs them, at most once every 10 s."""

    def __init__(self, stats: Any) -> None:
        self.stats = stats
        self._logged_at = 0.0

    def __call__(self, exc: MalformedEvent) -> None:
        self.stats.messages_malformed += 1
        now = time.monotonic()
        if now - self._logged_at >= 10:
            self._logged_at = now
            log.warning("malformed message on the event channel ignored (%s); %d so far",
                        exc, self.stats.messages_malformed)


def make_subscriber(app: Celery, on_malformed: Callable[[MalformedEvent], None],
                    reader: dict[str, Any] | None = None,
                    on_dropped: Callable[[int], None] = lambda n: None,
                    event_queue: tuple[EventQueueOptions, QueueHooks] | None = None) -> Subscriber:
    """The subscriber for the app's broker; with `reader` (privacy settings), a reader process where possible;
    with `event_queue` (an AMQP broker: the service checked), the durable queue."""
    transport = app.connection_for_read().transport_cls
    if isinstance(transport, str) and transport in ("redis", "rediss", "sentinel"):
        if reader is not None and transport != "sentinel" and HIREDIS_AVAILABLE:
            return ProcessSubscriber(app, on_malformed, reader, on_dropped)
        return RedisSubscriber(app, on_malformed)
    if event_queue is not None:
        return DurableQueueSubscriber(app, on_malformed, *event_queue)
    return KombuSubscriber(app, on_malformed)


def supports_event_queue(app: Celery) -> bool:
    """Whether the app's broker speaks AMQP, where a durable event queue can buffer (Redis PUB/SUB cannot)."""
    return app.connection_for_read().transport.driver_type == "amqp"


class RedisSubscriber:
    def __init__(self, app: Celery, on_malformed: Callable[[MalformedEvent], None]) -> None:
        self.app = app
        self.on_malformed = on_malformed

    def topics(self, channel: Any) -> list[str]:
        """The PUB/SUB patterns for the event exchange, as kombu computes them for a `#` binding."""
        channel.pool  # noqa: B018 - formats keyprefix_fanout with the DB number
        return list(channel._get_publish_topics(self.app.conf.event_exchange, "*"))

    def run(self, handoff: Handoff, on_connected: Callable[[], None], should_stop: Callable[[], bool]) -> None:
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.default_channel
            pubsub = channel._create_client().pubsub(ignore_subscribe_messages=True)
            try:
                topics = self.topics(channel)
                pubsub.psubscribe(*topics)
                self._confirm(pubsub)
                # redis-py would silently reconnect and resubscribe, hiding the events lost meanwhile; we
                # want the error, so the outage is recorded as a gap and repaired.
                pubsub.connection.retry = Retry(NoBackoff(), 0)
                log.info("subscribed to %s", ", ".join(topics))
                on_connected()
                if reader_process.has_hiredis_reader(pubsub):
                    self._chunked_loop(pubsub, handoff, should_stop)
                else:
                    self._loop(pubsub, handoff, should_stop)
            finally:
                _quietly(pubsub.close)

    def _confirm(self, pubsub: Any) -> None:
        # The subscription is only live once Redis confirms it; reconciliation must not start earlier.
        deadline = time.monotonic() + 10
        pubsub.ignore_subscribe_messages = False
        while True:
            message = pubsub.get_message(timeout=0.5)
            if message is not None and message.get("type") == "psubscribe":
                break
            if time.monotonic() > deadline:
                raise ConnectionError("Redis did not confirm the event subscription within 10 s")
        pubsub.ignore_subscribe_messages = True

    def _loop(self, pubsub: Any, handoff: Handoff, should_stop: Callable[[], bool]) -> None:
        get_message = pubsub.get_message
        while not should_stop():
            try:
                message = get_message(timeout=_POLL)
            except RedisTimeoutError:
                # A large message that has only partly arrived: the parser keeps what it read and the
                # connection is fine. Only a ConnectionError means the subscription is gone.
                continue
            if message is not None and message.get("type") == "pmessage":
                self._hand_over(message["data"], handoff)

    def _chunked_loop(self, pubsub: Any, handoff: Handoff, should_stop: Callable[[], bool]) -> None:
        def hand_over_all(payloads: list[Any], _received: float) -> None:
            for payload in payloads:
                self._hand_over(payload, handoff)

        reader_process.drain_subscription(pubsub, hand_over_all, lambda: not should_stop())

    def _hand_over(self, data: bytes, handoff: Handoff) -> None:
        try:
            events = decode_envelope(data)
        except MalformedEvent as exc:
            self.on_malformed(exc)
            return
        handoff(events, time.time())


class ProcessSubscriber:
    """Redis through a reader process (webui.collector.reader says why); in-process when that can't be done."""

    def __init__(self, app: Celery, on_malformed: Callable[[MalformedEvent], None],
                 redactor_options: dict[str, Any], on_dropped: Callable[[int], None]) -> None:
        self.app = app
        self.on_malformed = on_malformed
        self.redactor_options = redactor_options
        self.on_dropped = on_dropped

    def run(self, handoff: Handoff, on_connected: Callable[[], None], should_stop: Callable[[], bool]) -> None:
        params = self._params()
        if params is None:  # e.g. a credential provider object: read in this process instead
            RedisSubscriber(self.app, self.on_malformed).run(handoff, on_connected, should_stop)
            return
        process = subprocess.Popen([sys.executable, "-m", "webui.collector.reader"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, close_fds=True)
        try:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(pickle.dumps(params))
            process.stdin.close()
            messages = Connection(os.dup(process.stdout.fileno()), writable=False)
            try:
                self._relay(process, messages, params["topics"], handoff, on_connected, should_stop)
            finally:
                messages.close()
        finally:
            _stop_process(process)

    def _params(self) -> dict[str, Any] | None:
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.default_channel
            connection = reader_process.connection_params(channel)
            if connection is None:
                return None
            prefix = channel.global_keyprefix or ""
            topics = [prefix + t for t in channel._get_publish_topics(self.app.conf.event_exchange, "*")]
        return {**connection, "topics": topics, "redactor": self.redactor_options}

    def _relay(self, process: subprocess.Popen[bytes], messages: Connection, topics: list[str], handoff: Handoff,
               on_connected: Callable[[], None], should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            if not messages.poll(_POLL):
                if process.poll() is not None:
                    raise ConnectionError(f"the event reader process exited with code {process.returncode}")
                continue
            try:
                message = messages.recv()
            except EOFError:
                raise ConnectionError(f"the event reader process ended (code {process.wait(5)})") from None
            kind = message[0]
            if kind == "events":
                _, events, received, malformed, reason, dropped = message
                if events:
                    handoff(events, received, True)
                for _ in range(malformed):
                    self.on_malformed(MalformedEvent(reason or "malformed"))
                if dropped:
                    self.on_dropped(dropped)
            elif kind == "connected":
                log.info("subscribed to %s through the event reader process (pid %d)",
                         ", ".join(topics), process.pid)
                on_connected()
            elif kind == "error":
                raise ConnectionError(message[1])


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    for stream in (process.stdin, process.stdout):
        if stream is not None and not stream.closed:
            stream.close()


class KombuSubscriber:
    def __init__(self, app: Celery, on_malformed: Callable[[MalformedEvent], None]) -> None:
        self.app = app
        self.on_malformed = on_malformed
        self.node_id = f"webui-{uuid.uuid4()}"

    def run(self, handoff: Handoff, on_connected: Callable[[], None], should_stop: Callable[[], bool]) -> None:
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            # Celery's Receiver declares the queue with the app's event_queue_* settings for this version.
            queue = self.app.events.Receiver(conn, node_id=self.node_id).queue
            consumer = conn.Consumer(queues=[queue], no_ack=True, accept=SAFE_CONTENT_TYPES,
                                     on_message=lambda message: self._hand_over(message, handoff))
            with consumer:
                log.info("consuming events from queue %s on %s", queue.name, conn.as_uri())
                on_connected()
                while not should_stop():
                    try:
                        conn.drain_events(timeout=_POLL)
                    except TimeoutError:
                        conn.heartbeat_check()

    def _hand_over(self, message: Any, handoff: Handoff) -> None:
        try:
            events = decode_body(message.body, message.content_type, message.content_encoding)
        except MalformedEvent as exc:
            self.on_malformed(exc)
            return
        handoff(events, time.time())


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - closing a connection that is already broken
        pass
