"""The companion's RabbitMQ queue (webui.agent with an amqp:// URL): consumed with manual acks, sent once committed.

The same contract as the companion's Redis Stream (webui.collector.agent_stream), on a durable queue:
- **Declared alike.** The workers and this reader declare the queue with the same arguments
  (webui.agent.transport.agent_queue: durable, `x-max-length` = `agent_max_length`, `x-overflow: drop-head`,
  lazy); RabbitMQ refuses a declaration with other arguments, and the reader then says which setting differs.
- **Acknowledged only once stored.** Deliveries are gathered into batches (one record a message), each batch
  handed to the writer with a receipt for its last delivery tag; once the writer committed it, this thread, which
  owns the channel, acknowledges everything up to that tag (webui.collector.acks). A collector SIGKILLed in
  between leaves its deliveries unacknowledged, and RabbitMQ gives them to the next consumer marked
  `redelivered`: the writer skips records already stored (webui.collector.redelivery), and a record that had been
  dropped as the repeat of an event is recognised by its timestamp (webui.collector.sources).
- **Bounded.** The prefetch window (`PREFETCH_BATCHES` batches) caps what one collector holds unacknowledged.
- **Losses.** Records the queue dropped past its bound (oldest first) are not counted: size `max_length` for
  the longest time no monitor reads (docs/companion.md).

Only the leader reads (the service runs this while it leads); one queue per monitor (per database): two monitors
sharing one would each get part of the records.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from amqp.exceptions import PreconditionFailed
from kombu import Connection, Consumer

from webui.agent.transport import agent_queue
from webui.collector.acks import DeliveryAcks, await_commits
from webui.collector.agent_stream import AgentReader, decode_record
from webui.collector.decode import MalformedEvent
from webui.collector.event_queue import STOP_WAIT

log = logging.getLogger(__name__)

PREFETCH_BATCHES = 2  # unacknowledged deliveries: this many batches, so one is read while the other commits
BATCH_WAIT = 0.1  # seconds a started batch waits for more deliveries before it is handed over
_POLL = 0.5  # seconds a wait for deliveries lasts while idle (should_stop is checked between waits)
_ACK_POLL = 0.02  # the same while handed-over batches wait for their commit: acks go out soon after it


class AgentQueueMismatch(ConnectionError):
    """The queue exists with other arguments (RabbitMQ refuses to redeclare it): the operator must act."""


class _Batch:
    """Deliveries read and not handed over yet: all redelivered or all not (the writer treats them apart)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.started = 0.0

    def full(self, count: int) -> bool:
        return len(self.messages) >= count or bool(self.messages) and time.monotonic() - self.started >= BATCH_WAIT

    def redelivered(self, message: Any) -> bool:
        return bool(message.delivery_info.get("redelivered"))


class AgentQueueReader(AgentReader):
    def run(self, handoff: Callable[..., None], should_stop: Callable[[], bool]) -> None:
        """Read until told to stop (returns) or RabbitMQ fails (raises: the service retries with backoff)."""
        with Connection(self.options.url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()  # carries only this queue's deliveries: acks cover all of a channel's
            queue, waiting = self._declare(channel)
            acks, batch = DeliveryAcks(), _Batch()

            def on_message(message: Any) -> None:
                if batch.messages and batch.redelivered(message) != batch.redelivered(batch.messages[0]):
                    self._hand_over(batch, handoff, acks)
                if not batch.messages:
                    batch.started = time.monotonic()
                batch.messages.append(message)

            consumer = Consumer(channel, queues=[queue], no_ack=False, auto_declare=False, on_message=on_message)
            consumer.qos(prefetch_count=PREFETCH_BATCHES * self.count)
            with consumer:
                log.info("reading the companion queue %s (%d records waiting) on %s", self.options.stream, waiting,
                         conn.as_uri())
                self._consume(conn, channel, batch, acks, handoff, should_stop)
                # Deliveries not handed over are simply not acknowledged: RabbitMQ delivers them again.
                await_commits(acks.waiting, lambda: acks.send(channel), self.writer_alive, STOP_WAIT, _ACK_POLL)
                if acks.waiting():
                    log.info("stopping with companion records not committed: the queue delivers them again")

    def _declare(self, channel: Any) -> tuple[Any, int]:
        bound = agent_queue(self.options.stream, self.options.max_length)(channel)
        try:
            declared = bound.queue_declare()
        except PreconditionFailed as exc:
            raise AgentQueueMismatch(
                f"the companion queue {self.options.stream} exists with other arguments ({exc.reply_text}): set "
                "agent_max_length to the workers' webui_agent_max_length, or delete the queue (rabbitmqctl "
                f"delete_queue {self.options.stream}; what it holds is lost) so both declare it anew") from exc
        return bound, int(declared.message_count)

    def _consume(self, conn: Any, channel: Any, batch: _Batch, acks: DeliveryAcks, handoff: Callable[..., None],
                 should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            try:
                conn.drain_events(timeout=_ACK_POLL if batch.messages or acks.waiting() else _POLL)
            except TimeoutError:
                pass
            if batch.full(self.count):
                self._hand_over(batch, handoff, acks)
            acks.send(channel)

    def _hand_over(self, batch: _Batch, handoff: Callable[..., None], acks: DeliveryAcks) -> None:
        messages, batch.messages = batch.messages, []
        records = []
        for message in messages:
            try:
                records.append(decode_record(message.body))
            except MalformedEvent as exc:
                self.on_malformed(exc)  # still acknowledged with the others: it would never decode
        tag = messages[-1].delivery_tag
        handoff(records, time.time(), redelivered=batch.redelivered(messages[0]), receipt=acks.receipt(tag))
        acks.handed = tag
