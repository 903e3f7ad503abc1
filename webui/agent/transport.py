"""Where the companion's records go: a Redis Stream or a durable, bounded RabbitMQ queue (docs/companion.md).

Both take one batch at a time from the publisher's background thread (webui.agent.publisher), raise on any
failure (the publisher drops and counts the batch, and calls `reset`), and are told to `forget` their connection
in a forked child, whose parent still owns the socket.

- **Redis** (`redis://`, `rediss://`, `unix://`): one pipeline of `XADD … MAXLEN ~ max_length` per batch.
- **RabbitMQ** (`amqp://`, `amqps://`, `pyamqp://`): one persistent message per record, through the default
  exchange, to a queue both sides declare with the same arguments (`agent_queue`): durable, `x-max-length`
  records with `x-overflow: drop-head` (the oldest go first, as the stream trims them), lazy (a backlog waits on
  the broker's disk). Publishes are not confirmed one by one (a round trip each); instead each batch ends with a
  passive declare of the queue, which RabbitMQ answers only after the batch's publishes on that channel: a batch
  counts as sent once the broker took all of it, and a queue deleted under the workers is noticed (and
  declared again on the next connection) rather than publishing into nothing.
"""
from __future__ import annotations

import json
from typing import Any, Protocol

# Imported here, not on the first send: a pool process forked while another thread held the import lock of a
# module being imported would wait for that lock forever (kombu imports its transport module lazily).
import kombu.transport.pyamqp  # noqa: F401
import redis
from kombu import Connection, Exchange, Queue

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
SOCKET_TIMEOUT = 1.0  # seconds a connect or a send may take before the batch counts as failed
CONTENT_TYPE = "application/json"


def is_redis(url: str) -> bool:
    return url.startswith(REDIS_SCHEMES)


def is_amqp(url: str) -> bool:
    return url.startswith(AMQP_SCHEMES)


def encode(record: dict[str, Any]) -> str:
    """A record as it travels, on either transport (the collector's `decode_record` reads it back)."""
    return json.dumps(record, default=repr)


def agent_queue(name: str, max_length: int) -> Queue:
    """The companion's queue, as the workers and the collector both declare it: RabbitMQ refuses a second
    declaration with other arguments, so this is the one place they are written."""
    return Queue(name, exchange=Exchange(""), routing_key=name, durable=True, auto_delete=False, exclusive=False,
                 max_length=max_length, queue_arguments={"x-overflow": "drop-head", "x-queue-mode": "lazy"})


class Transport(Protocol):
    def send(self, batch: list[dict[str, Any]]) -> None: ...
    def reset(self) -> None: ...
    def forget(self) -> None: ...


class RedisStream:
    def __init__(self, url: str, stream: str, max_length: int) -> None:
        self.url, self.stream, self.max_length = url, stream, max_length
        self._client: Any = None

    def send(self, batch: list[dict[str, Any]]) -> None:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_timeout=SOCKET_TIMEOUT,
                                                socket_connect_timeout=SOCKET_TIMEOUT)
        pipe = self._client.pipeline(transaction=False)
        for item in batch:
            pipe.xadd(self.stream, {"r": encode(item)}, maxlen=self.max_length, approximate=True)
        pipe.execute()

    def reset(self) -> None:
        self._client = None

    forget = reset  # redis-py's pool notices a fork by itself


class AmqpQueue:
    def __init__(self, url: str, queue: str, max_length: int) -> None:
        self.url, self.queue = url, agent_queue(queue, max_length)
        self._connection: Any = None
        self._channel: Any = None

    def send(self, batch: list[dict[str, Any]]) -> None:
        channel = self._channel or self._connect()
        name = self.queue.name
        for item in batch:
            # The channel's own publish, not kombu's Producer: about a third less time a record (measured), and the
            # Producer's retry, serialisation and declaration steps are all unwanted here.
            message = channel.prepare_message(encode(item).encode(), content_type=CONTENT_TYPE,
                                              content_encoding="utf-8", properties={"delivery_mode": 2})
            channel.basic_publish(message, exchange="", routing_key=name)
        channel.queue_declare(queue=name, passive=True)  # the batch's round trip

    def _connect(self) -> Any:
        # No retries and short socket timeouts: kombu's connect() retries a refused connection after 2 s, and
        # without read/write timeouts a silent broker holds the thread longer; a lost batch is counted instead.
        connection = Connection(self.url, connect_timeout=SOCKET_TIMEOUT,
                                transport_options={"read_timeout": SOCKET_TIMEOUT, "write_timeout": SOCKET_TIMEOUT})
        self._connection = connection
        connection.ensure_connection(max_retries=0)
        channel = connection.channel()
        self.queue(channel).declare()
        self._channel = channel
        return channel

    def reset(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001 - the broker already went: nothing to close politely
                pass

    def forget(self) -> None:
        """In a forked child: drop the parent's connection without closing it (the parent still uses it)."""
        self._connection, self._channel = None, None


def for_url(url: str, stream: str, max_length: int) -> Transport:
    """The transport of `url`; ValueError for a scheme the companion cannot write to."""
    if is_redis(url):
        return RedisStream(url, stream, max_length)
    if is_amqp(url):
        return AmqpQueue(url, stream, max_length)
    raise ValueError(f"webui.agent needs a Redis or RabbitMQ URL (webui_agent_url or WEBUI_AGENT_URL), not {url!r}")
