"""RabbitMQ without loss: a durable, bounded, named event queue that outlives a collector restart.

With `event_queue` set (AMQP brokers only), the leading collector consumes Celery's event exchange through a
queue of that name that RabbitMQ keeps while no collector reads it, instead of the auto-delete queue Celery's
own Receiver makes (celery-facts §1.7). Events published while the monitor restarts, fails over or is cut off
from the broker wait there and are stored afterwards.

The contract:
- **Acknowledged only once stored.** Messages are consumed with manual acks. Each message's receipt travels in
  the writer's inbox behind its events; the writer calls it once the batch holding them is committed, and this
  thread, which owns the channel, acknowledges everything up to the newest committed delivery tag
  (`multiple=True`). So a SIGKILLed collector loses nothing: what it had not committed is delivered again, and
  the writer skips the events of a redelivered message that it had stored after all (webui.collector.redelivery).
  A prefetch window of `PREFETCH` messages bounds what one collector holds in memory.
- **Bounded.** `x-max-length` (messages) and `x-max-length-bytes` (bodies) drop the oldest messages first, and
  `x-message-ttl` those waiting too long, so a stopped monitor cannot fill the broker; `x-expires` deletes the
  queue once no collector used it for that long, so a monitor removed for good leaves nothing behind. The queue
  is lazy (`x-queue-mode`; RabbitMQ 3.12+ classic queues always are): a backlog waits on the broker's disk, not
  in its memory. Measured on RabbitMQ 3.10: 100,000 one-event messages (heartbeats) took 27.5 MB of bodies,
  55 MB of disk and 0.26 MB of queue memory (140 MB without lazy mode); 120,000 task events in 5,000
  `task.multi` messages 30 MB of bodies and 31 MB of disk.
- **Losses are counted.** Dropped and expired messages are dead-lettered to `<name>.dropped`, itself bounded
  (`reject-publish`: once full, further drops are not kept, and the count says "at least"). The collector reads
  and acknowledges them (at connect and every `DROPPED_POLL` seconds) and records a gap with the events lost.
- **Knowing the queue kept everything.** Events are transient messages: a broker restart empties the queue but
  not its declaration. So the dropped queue also holds a marker, a transient message of ours that each read puts
  back. At every (re)connection: the queue existed and the marker is still there → nothing was missed while the
  collector was away (bar what was dropped and counted); otherwise the service records the gap as it does
  without the durable queue (webui.collector.service).

Only the leader consumes (the service subscribes once it leads), so standbys never take messages from it; the
collector that takes over consumes the same queue. One queue per monitor (per database): two monitors sharing one
would each get only part of the events.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from amqp.exceptions import NotFound, PreconditionFailed
from celery import Celery
from celery.events.event import get_exchange
from kombu import Consumer, Exchange, Producer, Queue

from webui.collector.acks import DeliveryAcks
from webui.collector.decode import SAFE_CONTENT_TYPES, MalformedEvent, decode_body

log = logging.getLogger(__name__)

PREFETCH = 1000  # unacknowledged messages one collector holds: ~0.3 MB of heartbeats, ~6 MB of task.multi batches
DROPPED_POLL = 5.0  # seconds between reads of the dropped queue while consuming
STOP_WAIT = 5.0  # seconds a stopping subscriber waits for the writer to commit what it handed over
MARKER_HEADER = "x-webui-marker"
GAP_QUEUE_DROPPED = "event-queue-dropped"
_POLL = 0.5  # seconds between checks of should_stop while the queue is idle
_ACK_POLL = 0.02  # the same while handed-over messages wait for their commit: acks go out soon after it


class EventQueueMismatch(ConnectionError):
    """The queue exists with other arguments (RabbitMQ refuses to redeclare it): the operator must act."""


@dataclass(frozen=True)
class EventQueueOptions:
    name: str
    max_length: int
    max_bytes: int
    ttl: float
    expires: float

    @classmethod
    def from_settings(cls, settings: Any) -> EventQueueOptions | None:
        if not settings.event_queue:
            return None
        return cls(settings.event_queue, settings.event_queue_max_length, settings.event_queue_max_bytes,
                   settings.event_queue_ttl, settings.event_queue_expires)

    @property
    def dropped_name(self) -> str:
        return f"{self.name}.dropped"

    @property
    def dropped_max(self) -> int:
        """How many dropped messages are kept to be counted: a tenth of the bound (at least 1,000, or the bound)."""
        return max(min(self.max_length, 1000), self.max_length // 10)

    def queue(self, exchange: Exchange) -> Queue:
        return Queue(self.name, exchange=exchange, routing_key="#", durable=True, auto_delete=False,
                     exclusive=False, max_length=self.max_length, max_length_bytes=self.max_bytes,
                     message_ttl=self.ttl, expires=self.expires,
                     queue_arguments={"x-overflow": "drop-head", "x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": self.dropped_name, "x-queue-mode": "lazy"})

    def dropped_queue(self) -> Queue:
        return Queue(self.dropped_name, exchange=Exchange(""), routing_key=self.dropped_name, durable=True,
                     auto_delete=False, max_length=self.dropped_max, expires=self.expires,
                     queue_arguments={"x-overflow": "reject-publish", "x-queue-mode": "lazy"})


@dataclass
class DropReport:
    """Messages the queue dropped (dead-lettered), as read from the dropped queue."""

    messages: int = 0
    events: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first: float | None = None  # the oldest and newest event timestamps among them (senders' clocks)
    last: float | None = None
    full: bool = False  # the dropped queue was full: more were dropped than counted

    def add(self, events: list[Any], reason: str) -> None:
        self.messages += 1
        self.events += len(events)
        self.reasons[reason] += 1
        for event in events:
            ts = event.get("timestamp") if isinstance(event, dict) else None
            if isinstance(ts, int | float) and type(ts) is not bool:
                self.first = ts if self.first is None else min(self.first, ts)
                self.last = ts if self.last is None else max(self.last, ts)

    def describe(self, options: EventQueueOptions) -> str:
        why = []
        if self.reasons.get("maxlen"):
            why.append(f"{self.reasons['maxlen']} past its bound (event_queue_max_length={options.max_length}, "
                       f"event_queue_max_bytes={options.max_bytes})")
        if self.reasons.get("expired"):
            why.append(f"{self.reasons['expired']} older than event_queue_ttl={options.ttl:g} s")
        other = self.messages - self.reasons.get("maxlen", 0) - self.reasons.get("expired", 0)
        if other:
            why.append(f"{other} for another reason ({', '.join(sorted(self.reasons))})")
        at_least = "at least " if self.full else ""
        return (f"the durable event queue {options.name} dropped {at_least}{self.events} events in "
                f"{at_least}{self.messages} messages, oldest first: {'; '.join(why)}")


@dataclass(frozen=True)
class Resume:
    """What the queue says at a (re)connection about the time the collector did not read it."""

    intact: bool  # it kept every event since the collector last read it, bar those in `dropped`
    why: str | None  # why not, when not
    backlog: int  # messages waiting in it
    dropped: DropReport | None


@dataclass(frozen=True)
class QueueHooks:
    """The service's side: told when the backlog is read and what was dropped; asked whether the writer runs,
    and to commit soon."""

    caught_up: Callable[[], None]
    dropped: Callable[[DropReport], None]
    writer_alive: Callable[[], bool]
    commit_soon: Callable[[], None]


class DurableQueueSubscriber:
    """The subscriber for `event_queue` (same `run` shape as webui.collector.subscriber's)."""

    def __init__(self, app: Celery, on_malformed: Callable[[MalformedEvent], None], options: EventQueueOptions,
                 hooks: QueueHooks) -> None:
        self.app = app
        self.on_malformed = on_malformed
        self.options = options
        self.hooks = hooks
        self._backlog = 0
        self._read = 0

    def run(self, handoff: Callable[..., None], on_connected: Callable[..., None],
            should_stop: Callable[[], bool]) -> None:
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            existed = self._exists(conn)
            # Two channels: acks with multiple=True cover every delivery of their channel, so the consuming one
            # carries nothing but the event queue's messages.
            consuming, side = conn.channel(), conn.channel()
            dropped = self._declare(side, self.options.dropped_queue())
            queue = self._declare(consuming, self.options.queue(get_exchange(conn, self.app.conf.event_exchange)))
            report, marker_kept = self._read_dropped(dropped)
            if not marker_kept:
                self._place_marker(side)
            resume = self._resume(existed, marker_kept, report)
            acks = DeliveryAcks()
            consumer = Consumer(consuming, queues=[queue], no_ack=False, accept=SAFE_CONTENT_TYPES,
                                auto_declare=False,
                                on_message=lambda message: self._hand_over(message, handoff, acks))
            consumer.qos(prefetch_count=PREFETCH)
            with consumer:
                log.info("subscribed to the durable event queue %s (%d messages waiting) on %s",
                         self.options.name, resume.backlog, conn.as_uri())
                on_connected(resume)
                if not resume.backlog:
                    self.hooks.caught_up()
                self._consume(conn, consuming, dropped, acks, should_stop)
                self._finish(consuming, acks)

    # -- connecting ------------------------------------------------------------------------------------
    def _exists(self, conn: Any) -> bool:
        channel = conn.channel()
        try:
            channel.queue_declare(queue=self.options.name, passive=True)
            return True
        except NotFound:
            return False
        finally:
            _quietly(channel.close)

    def _declare(self, channel: Any, queue: Queue) -> Queue:
        bound = queue(channel)
        try:
            if bound.exchange is not None and bound.exchange.name:
                bound.exchange.declare()
            declared = bound.queue_declare()
            if bound.exchange is not None and bound.exchange.name:
                bound.queue_bind()
        except PreconditionFailed as exc:
            raise EventQueueMismatch(
                f"the queue {queue.name} exists with other arguments than the event_queue_* settings ask for "
                f"({exc.reply_text}): RabbitMQ cannot change them on an existing queue. Delete it "
                f"(rabbitmqctl delete_queue {queue.name}; what it holds is lost) or set the old values back"
            ) from exc
        if queue.name == self.options.name:
            self._backlog = int(declared.message_count)
            self._read = 0
        return bound

    def _resume(self, existed: bool, marker_kept: bool, report: DropReport | None) -> Resume:
        why = None
        if not existed:
            why = (f"the durable event queue {self.options.name} did not exist (first use, or deleted after "
                   f"{self.options.expires:g} s without a collector)")
        elif not marker_kept:
            why = (f"the durable event queue {self.options.name} lost its contents (a broker restart empties it: "
                   "events are transient messages)")
        return Resume(intact=why is None, why=why, backlog=self._backlog, dropped=report)

    # -- the dropped queue and its marker --------------------------------------------------------------
    def _read_dropped(self, dropped: Queue) -> tuple[DropReport | None, bool]:
        """Count and acknowledge what the queue dead-lettered; say whether the marker was there (and keep it)."""
        report = DropReport()
        marker = None
        seen = 0
        while seen <= self.options.dropped_max:
            message = dropped.get(no_ack=False)
            if message is None:
                break
            seen += 1
            if MARKER_HEADER in (message.headers or {}):
                if marker is None:
                    marker = message  # held until the end of this read, then put back
                else:
                    message.ack()
                continue
            report.add(self._events_of(message), _death_reason(message.headers or {}))
            message.ack()
        if marker is not None:
            marker.requeue()
        report.full = seen >= self.options.dropped_max
        return (report if report.messages else None), marker is not None

    def _place_marker(self, channel: Any) -> None:
        producer = Producer(channel, exchange=Exchange(""), routing_key=self.options.dropped_name,
                            auto_declare=False)
        producer.publish(b"", content_type="application/x-webui-marker", content_encoding="binary",
                         headers={MARKER_HEADER: time.time()}, delivery_mode=1, retry=False)

    def _events_of(self, message: Any) -> list[Any]:
        try:
            return decode_body(message.body, message.content_type, message.content_encoding)
        except MalformedEvent:
            return []

    # -- consuming -------------------------------------------------------------------------------------
    def _hand_over(self, message: Any, handoff: Callable[..., None], acks: DeliveryAcks) -> None:
        tag = message.delivery_tag
        try:
            events = decode_body(message.body, message.content_type, message.content_encoding)
        except MalformedEvent as exc:
            self.on_malformed(exc)
            events = []  # still handed over: its receipt must be acknowledged in turn
        handoff(events, time.time(), redelivered=bool(message.delivery_info.get("redelivered")),
                receipt=acks.receipt(tag))
        acks.handed = tag
        if tag - acks.committed == PREFETCH // 2:
            self.hooks.commit_soon()  # the broker sends at most PREFETCH unacknowledged: don't let it run dry
        self._read += 1
        if self._read == self._backlog:
            log.info("read the %d messages the durable event queue held", self._backlog)
            self.hooks.caught_up()

    def _consume(self, conn: Any, consuming: Any, dropped: Queue, acks: DeliveryAcks,
                 should_stop: Callable[[], bool]) -> None:
        next_read = time.monotonic() + DROPPED_POLL
        while not should_stop():
            try:
                conn.drain_events(timeout=_ACK_POLL if acks.waiting() else _POLL)
            except TimeoutError:
                conn.heartbeat_check()
            acks.send(consuming)
            if time.monotonic() >= next_read:
                next_read = time.monotonic() + DROPPED_POLL
                conn.heartbeat_check()
                report, marker_kept = self._read_dropped(dropped)
                if not marker_kept:
                    self._place_marker(dropped.channel)
                if report is not None:
                    self.hooks.dropped(report)

    def _finish(self, consuming: Any, acks: DeliveryAcks) -> None:
        """Stopping: let the writer commit what it was handed, acknowledge it, so a restart repeats nothing."""
        deadline = time.monotonic() + STOP_WAIT
        while acks.waiting() and self.hooks.writer_alive() and time.monotonic() < deadline:
            time.sleep(_ACK_POLL)
        acks.send(consuming)
        if acks.waiting():
            log.info("stopping with %d handed-over messages not committed: the queue delivers them again",
                     acks.handed - acks.committed)


def _death_reason(headers: dict[str, Any]) -> str:
    reason = headers.get("x-first-death-reason")
    if isinstance(reason, str):
        return reason
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return str(deaths[0].get("reason", "unknown"))
    return "unknown"


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - closing a channel the broker already closed
        pass
