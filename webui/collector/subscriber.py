"""Receive Celery's event messages from the broker and hand them over undecoded-but-parsed, fast.

Two implementations with one shape, `run(handoff, on_connected, should_stop)`, which returns when asked to
stop and raises on a broker error (the service reconnects with backoff):

- `RedisSubscriber`: a raw PSUBSCRIBE through redis-py. The connection, the channel names and the prefixes
  come from kombu's own Redis channel for the app's broker URL and `broker_transport_options`
  (`fanout_prefix`, `fanout_patterns`, `global_keyprefix`, Sentinel), so we listen exactly where the workers
  publish (celery-facts §1.6, §2.4). About 1.6x the throughput of Celery's Receiver.
- `KombuSubscriber`: every other transport (RabbitMQ…): a kombu consumer on the queue Celery's own
  `EventReceiver` would declare, with `no_ack`, reading raw message bodies.

Neither applies Celery's Receiver normalisation: timestamps stay as sent (decode.py says why).
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from webui.collector.decode import SAFE_CONTENT_TYPES, MalformedEvent, decode_body, decode_envelope

log = logging.getLogger(__name__)

Handoff = Callable[[list[Any], float], None]
_POLL = 0.5  # seconds between checks of should_stop while the channel is idle


class Subscriber(Protocol):
    def run(self, handoff: Handoff, on_connected: Callable[[], None], should_stop: Callable[[], bool]) -> None:
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


def make_subscriber(app: Celery, on_malformed: Callable[[MalformedEvent], None]) -> Subscriber:
    transport = app.connection_for_read().transport_cls
    if isinstance(transport, str) and transport in ("redis", "rediss", "sentinel"):
        return RedisSubscriber(app, on_malformed)
    return KombuSubscriber(app, on_malformed)


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
            message = get_message(timeout=_POLL)
            while message is not None:
                if message.get("type") == "pmessage":
                    self._hand_over(message["data"], handoff)
                message = get_message(timeout=0)

    def _hand_over(self, data: bytes, handoff: Handoff) -> None:
        try:
            events = decode_envelope(data)
        except MalformedEvent as exc:
            self.on_malformed(exc)
            return
        handoff(events, time.time())


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
