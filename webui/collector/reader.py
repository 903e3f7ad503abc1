"""The reader process: subscribe to Redis, decode, validate and mask events, and pass them on in batches.

Why a process: reading and decoding events and merging and writing them are both Python work, and in one
process they share one core through the GIL. Measured on 2 cores, the single-process collector topped out
near 25,000 events/s with the other core idle. Here the reader does everything per message (socket reads,
hiredis parsing, JSON and base64, validation, masking) on its own core, and the collector process only merges
and writes. It also keeps the subscription drained when the UI's own request threads are busy, so Redis never
disconnects us as a slow subscriber.

Protocol: the parent writes the pickled parameters to our stdin and reads pickled messages from our stdout
(a multiprocessing Connection: framed, with poll()):
- `("connected",)` once the subscription is confirmed;
- `("events", events, received_at, malformed, last_reason, dropped)` per socket read: ready-to-merge event
  dicts, and how many were dropped because the collector fell more than `MAX_QUEUED_EVENTS` behind;
- `("error", text)` before exiting on a broker error.
The reader exits when its parent dies, when stdout closes, or on SIGTERM.

The reader never waits for the collector: a sender thread writes to the pipe while the main thread keeps
draining Redis. Were the reader to block on a full pipe, Redis would buffer for it instead and disconnect it
at 32 MB (celery-facts §1.6); a bounded queue here turns that into counted drops and a recorded gap.
"""
from __future__ import annotations

import collections
import fcntl
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from webui.collector.decode import MalformedEvent, decode_envelope, normalise
from webui.privacy import Redactor

# Connection options that are plain data, so they can be handed to another process. A pool that needs any
# other option (Sentinel, a credential provider object) is read in-process instead.
PLAIN_OPTIONS = frozenset({
    "host", "port", "path", "db", "username", "password", "client_name", "socket_timeout",
    "socket_connect_timeout", "socket_keepalive", "socket_keepalive_options", "health_check_interval",
    "retry_on_timeout", "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_data",
    "ssl_ca_path", "ssl_check_hostname", "ssl_password", "ssl_min_version", "ssl_ciphers", "protocol",
})
IGNORED_OPTIONS = frozenset({"himport_registry", "maint_notifications_pool_handler", "maint_notifications_config",
                             "orig_host_address", "orig_socket_timeout", "orig_socket_connect_timeout"})
CONNECTION_CLASSES = {
    "Connection": redis.Connection,
    "SSLConnection": redis.SSLConnection,
    "UnixDomainSocketConnection": redis.UnixDomainSocketConnection,
}
_CHUNK = 1 << 20
MAX_QUEUED_EVENTS = 500_000  # about 0.5 GB at worst; the collector's own buffer holds 1,000,000 more
_PIPE_SIZE = 1 << 20
_POLL = 0.5
_PING_AFTER = 25.0
_PING_TIMEOUT = 10.0


def connection_params(channel: Any) -> dict[str, Any] | None:
    """What the reader needs to open kombu's Redis connection itself, or None if it can't be passed on."""
    pool = channel.pool  # also formats the channel's fanout prefix with the DB number
    class_name = pool.connection_class.__name__
    if class_name not in CONNECTION_CLASSES:
        return None
    options = {k: v for k, v in pool.connection_kwargs.items() if k not in IGNORED_OPTIONS and v is not None}
    if set(options) - PLAIN_OPTIONS:
        return None
    return {"connection_class": class_name, "connection": options}


def main() -> int:
    params = pickle.load(sys.stdin.buffer)
    # Our stdout carries the protocol: anything else printed would corrupt it, so fd 1 becomes stderr.
    _grow_pipe(1)
    sender = Sender(Connection(os.dup(1), readable=False))
    os.dup2(2, 1)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sender.start()
    try:
        Reader(params, sender).run()
    except (redis.RedisError, OSError) as exc:
        sender.put(("error", f"{type(exc).__name__}: {exc}"), 0)
        sender.close()
        return 1
    return 0


class Sender(threading.Thread):
    """Writes messages to the collector from a queue, so reading Redis never waits on the pipe."""

    def __init__(self, out: Connection) -> None:
        super().__init__(name="webui-reader-sender", daemon=True)
        self.out = out
        self._queue: collections.deque[tuple[tuple[Any, ...], int]] = collections.deque()
        self._ready = threading.Condition()
        self.queued_events = 0
        self.dropped = 0

    def put(self, message: tuple[Any, ...], events: int) -> None:
        with self._ready:
            self._queue.append((message, events))
            self.queued_events += events
            self._ready.notify()

    def has_room(self, events: int) -> bool:
        return self.queued_events + events <= MAX_QUEUED_EVENTS

    def close(self, timeout: float = 5.0) -> None:
        """Let the queued messages (an error report last) reach the collector, then stop."""
        self.put(("closed",), 0)
        self.join(timeout)

    def run(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                message, events = self._queue.popleft()
                self.queued_events -= events
            if message[0] == "closed":
                return
            _send(self.out, message)


class Reader:
    def __init__(self, params: dict[str, Any], out: Sender) -> None:
        self.params = params
        self.out = out
        self.parent = os.getppid()
        self.redactor = Redactor(**params["redactor"])

    def run(self) -> None:
        connection_class = CONNECTION_CLASSES[self.params["connection_class"]]
        pool = redis.ConnectionPool(connection_class=connection_class, **self.params["connection"])
        client = redis.Redis(connection_pool=pool)
        pubsub = client.pubsub()
        try:
            pubsub.psubscribe(*self.params["topics"])
            self._confirm(pubsub)
            pubsub.connection.retry = Retry(NoBackoff(), 0)  # a lost connection is a gap, not a silent retry
            self.out.put(("connected",), 0)
            self._read(pubsub)
        finally:
            try:
                pubsub.close()
            finally:
                pool.disconnect()

    def _confirm(self, pubsub: Any) -> None:
        deadline = time.monotonic() + 10
        while True:
            message = pubsub.get_message(timeout=0.5)
            if message is not None and message.get("type") == "psubscribe":
                return
            if time.monotonic() > deadline:
                raise redis.ConnectionError("Redis did not confirm the event subscription within 10 s")

    def _read(self, pubsub: Any) -> None:
        drain_subscription(pubsub, self._pass_on, lambda: os.getppid() == self.parent)

    def _pass_on(self, payloads: list[Any], received: float) -> None:
        events: list[dict[str, Any]] = []
        malformed, reason = 0, None
        clean = self.redactor.clean_event
        for payload in payloads:
            try:
                raw_events = decode_envelope(payload)
            except MalformedEvent as exc:
                malformed, reason = malformed + 1, str(exc)
                continue
            for raw in raw_events:
                try:
                    events.append(clean(normalise(raw, received), copy=False))
                except MalformedEvent as exc:
                    malformed, reason = malformed + 1, str(exc)
        if events and not self.out.has_room(len(events)):
            self.out.dropped += len(events)  # the collector is far behind: count, tell it, don't block
            events = []
        if events or malformed or self.out.dropped:
            dropped, self.out.dropped = self.out.dropped, 0
            self.out.put(("events", events, received, malformed, reason, dropped), len(events))


def drain_subscription(pubsub: Any, on_payloads: Callable[[list[Any], float], None],
                       keep_going: Callable[[], bool]) -> None:
    """Read a confirmed pub/sub subscription in large chunks into its connection's own hiredis reader.

    redis-py spends ~45 us of Python per message on its way to one pub/sub message, and clients send every
    `task-sent` as a message of its own; here one recv() brings many messages and hiredis parses them in C.
    redis-py still connected, authenticated and subscribed, so TLS and key prefixes behave as configured.
    Calls `on_payloads(message bodies, received_at)` once per read; raises redis.ConnectionError when the
    subscription is lost, including when a silent connection does not answer a PING.
    """
    connection = pubsub.connection
    reader = connection._parser._reader
    nothing = _not_enough_data()
    sock = connection._sock
    buffer = bytearray(_CHUNK)
    sock.settimeout(_POLL)
    heard_at, pinged_at = time.monotonic(), None
    while keep_going():
        payloads = []
        reply = reader.gets()
        while reply is not nothing and reply is not False:
            if isinstance(reply, Exception):
                raise redis.ConnectionError(f"Redis error on the event subscription: {reply}")
            if isinstance(reply, list) and len(reply) == 4 and reply[0] in (b"pmessage", "pmessage"):
                payloads.append(reply[3])
            reply = reader.gets()
        if payloads:
            on_payloads(payloads, time.time())
        try:
            size = sock.recv_into(buffer)
        except TimeoutError:
            pinged_at = _check_alive(connection, heard_at, pinged_at)
            continue
        if size == 0:
            raise redis.ConnectionError("Redis closed the event subscription connection")
        reader.feed(buffer, 0, size)
        heard_at, pinged_at = time.monotonic(), None


def _check_alive(connection: Any, heard_at: float, pinged_at: float | None) -> float | None:
    """A silent subscription may be a dead one (no FIN on a network partition): ping it, then give up."""
    now = time.monotonic()
    if pinged_at is None and now - heard_at >= _PING_AFTER:
        connection.send_command("PING")
        return now
    if pinged_at is not None and now - pinged_at >= _PING_TIMEOUT:
        raise redis.ConnectionError(f"Redis did not answer PING on the event subscription within {_PING_TIMEOUT}s")
    return pinged_at


def has_hiredis_reader(pubsub: Any) -> bool:
    parser = getattr(pubsub.connection, "_parser", None)
    return type(parser).__name__ == "_HiredisParser" and getattr(parser, "_reader", None) is not None


def _send(out: Connection, message: tuple[Any, ...]) -> None:
    try:
        out.send(message)
    except (BrokenPipeError, OSError):
        os._exit(0)  # the collector is gone: so are we


def _grow_pipe(fd: int) -> None:
    """A larger pipe smooths the collector's pauses (Linux only; the default is 64 KB)."""
    try:
        fcntl.fcntl(fd, 1031, _PIPE_SIZE)  # F_SETPIPE_SZ
    except OSError:
        pass


def _not_enough_data() -> Any:
    try:
        from redis._parsers.hiredis import NOT_ENOUGH_DATA
    except ImportError:
        return False
    return NOT_ENOUGH_DATA


if __name__ == "__main__":
    sys.exit(main())
