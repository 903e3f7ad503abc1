"""A RabbitMQ event exchange and durable event queue of one test's own, and ways to look at the queue."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from amqp.exceptions import NotFound
from celery import Celery
from celery.events import EventDispatcher
from kombu import Connection

from tests.support.events import dispatcher


class EventQueueBroker:
    """`webui collect` arguments and a dispatcher that agree on a fresh exchange; `waiting()` reads the queue."""

    def __init__(self, broker_url: str) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.url = broker_url
        self.exchange = f"celeryev-test-{suffix}"
        self.queue = f"webui-test-{suffix}"
        self.app = Celery(broker=broker_url)
        self.app.conf.event_exchange = self.exchange
        self.env = {"WEBUI_TEST_EVENT_EXCHANGE": self.exchange}

    def collect_args(self, database_url: str, *extra: str) -> list[str]:
        return ["-A", "tests.amqpapp", "--broker", self.url, "--database", database_url, "--batch-interval", "0.1",
                "--no-enable-events", "--log-level", "info", "--event-queue", self.queue, *extra]

    def dispatcher(self, batched: bool = True) -> AbstractContextManager[EventDispatcher]:
        return dispatcher(self.url, hostname="amqpworker@test", batched=batched, app=self.app)

    def declared(self, name: str | None = None) -> Any | None:
        """The queue's declare-ok (message_count: ready messages, consumer_count), None if it does not exist."""
        with Connection(self.url) as conn:
            channel = conn.channel()
            try:
                return channel.queue_declare(queue=name or self.queue, passive=True)
            except NotFound:
                return None

    def waiting(self) -> int:
        declared = self.declared()
        return declared.message_count if declared else 0

    def consumers(self) -> int:
        declared = self.declared()
        return declared.consumer_count if declared else 0

    def purge(self) -> None:
        """Empty the queue and its dropped queue (marker included): what a broker restart does to them."""
        with Connection(self.url) as conn:
            channel = conn.channel()
            for name in (self.queue, f"{self.queue}.dropped"):
                channel.queue_purge(name)

    def delete(self) -> None:
        with Connection(self.url) as conn:
            channel = conn.channel()
            for name in (self.queue, f"{self.queue}.dropped"):
                channel.queue_delete(name)
            channel.exchange_delete(self.exchange)


def event_queue_broker(broker_url: str) -> Iterator[EventQueueBroker]:
    broker = EventQueueBroker(broker_url)
    try:
        yield broker
    finally:
        broker.delete()
