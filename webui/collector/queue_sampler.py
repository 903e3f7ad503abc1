"""Sample each queue's depth every `queue_sample_interval` seconds, so the queues page has a history.

The leading collector runs `sample_loop` in a helper thread. Which queues: those the workers consume (their last
`active_queues` reply in `worker_inspection`), the app's `task_queues` and `task_default_queue`, and the queues
seen on tasks. What the broker tells:

- **Redis**: a queue is a list per priority step (`name`, `name\\x06\\x163`, …; celery-facts §4.1) under the
  transport's `global_keyprefix`: depth is the sum of their LLENs. The oldest waiting message is at each list's
  tail (workers BRPOP from the right); Celery puts no time in a message, so its age comes from the message's
  own `timestamp` when a producer set one, else from the task-sent event the store holds for its id, else it
  is unknown. Redis has no consumer count: the consumers are the online workers whose `active_queues` list it.
- **RabbitMQ**: a passive `queue_declare` gives the ready count and the consumer count; the management API, when
  reachable, gives ready and unacknowledged too (and the head message's timestamp, if it has one).

Samples go to the writer (the only database writer) with the retention cut-off: rows older than `RETENTION`
are deleted a batch at a time with each write (see `Rows.write_queue_samples`).
"""
from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from amqp.exceptions import NotFound
from celery import Celery
from peewee import Database

from webui import fastjson
from webui.collector.reader import CONNECTION_CLASSES, connection_params
from webui.store.database import discard_connection

log = logging.getLogger(__name__)

RETENTION = 7 * 86400.0
MAX_QUEUES = 200  # queues sampled per round: more is a misconfiguration, not a monitoring need
MAX_NAME = 255  # the queue_sample table's limit
TIMEOUT = 2.0
MANAGEMENT_PORT = 15672
REDIS_TRANSPORTS = ("redis", "rediss")
AMQP_TRANSPORTS = ("amqp", "pyamqp", "amqps")


@dataclass
class Sample:
    """One queue at one moment, as stored in `queue_sample` (`detail` as a dict here, JSON there)."""

    queue: str
    depth: int | None = None
    ready: int | None = None
    unacked: int | None = None
    consumers: int | None = None
    oldest_age: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        values = asdict(self)
        values["detail"] = fastjson.dumps(self.detail) if self.detail else None
        return values


# -- pure: key names, messages, which queues ----------------------------------------------------------------

def redis_keys(queue: str, steps: Iterable[int], sep: str, prefix: str = "") -> list[tuple[int, str]]:
    """`[(step, key)]` of a queue's priority lists, as kombu names them: the bare name for step 0."""
    keys: list[tuple[int, str]] = []
    seen = set()
    for step in sorted(set(steps) | {0}):
        key = f"{prefix}{queue}{sep}{step}" if step else f"{prefix}{queue}"
        if key not in seen:
            seen.add(key)
            keys.append((step, key))
    return keys


def peek_message(raw: bytes | str | None) -> tuple[str | None, float | None]:
    """A kombu Redis message's task id and its own send time (None when it has none: Celery sets none)."""
    if not raw:
        return None, None
    try:
        message = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(message, dict):
        return None, None
    headers = _dict(message.get("headers"))
    properties = _dict(message.get("properties"))
    task_id = headers.get("id") or properties.get("correlation_id")
    stamp = headers.get("timestamp", properties.get("timestamp"))
    timestamp = float(stamp) if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) else None
    return (task_id if isinstance(task_id, str) else None), timestamp


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def valid_name(name: Any) -> bool:
    return isinstance(name, str) and 0 < len(name) <= MAX_NAME and not any(ord(c) < 32 for c in name)


def consumers_by_queue(inspections: Iterable[tuple[str, str | None]]) -> dict[str, list[str]]:
    """`{queue: [hostname, …]}` from `(hostname, data JSON)` of the workers' last inspections."""
    consumers: dict[str, list[str]] = {}
    for hostname, data in inspections:
        try:
            replies = json.loads(data) if data else {}
        except ValueError:
            continue
        queues = replies.get("active_queues") if isinstance(replies, dict) else None
        for queue in queues if isinstance(queues, list) else []:
            name = _dict(queue).get("name")
            if isinstance(name, str) and valid_name(name) and hostname not in consumers.setdefault(name, []):
                consumers[name].append(hostname)
    return {name: sorted(hosts) for name, hosts in consumers.items()}


def configured_queues(app: Celery) -> list[str]:
    """`task_default_queue` and the names in `task_queues` (Queue objects, names or a dict of them)."""
    names = [app.conf.task_default_queue]
    queues = app.conf.task_queues or ()
    for queue in queues.values() if isinstance(queues, Mapping) else queues:
        names.append(getattr(queue, "name", queue))
    return [n for n in names if valid_name(n)]


def choose_queues(*sources: Iterable[str], limit: int = MAX_QUEUES) -> list[str]:
    """Every valid name once, in the order of the sources (consumed queues first), at most `limit`."""
    chosen: dict[str, None] = {}
    for source in sources:
        for name in source:
            if valid_name(name):
                chosen.setdefault(name, None)
    return list(chosen)[:limit]


# -- reading the store ----------------------------------------------------------------------------------------

def online_inspections(db: Database) -> list[tuple[str, str | None]]:
    """`(hostname, data)` of the inspections of workers the store sees online."""
    return list(db.execute_sql(
        "SELECT i.hostname, i.data FROM worker_inspection i JOIN worker w ON w.hostname = i.hostname "
        f"WHERE w.online = {db.param}", (True,)).fetchall())


def task_queue_names(db: Database, limit: int = MAX_QUEUES) -> list[str]:
    """The distinct queues on tasks, by skipping through the (queue, id) index: cheap however many tasks."""
    p = db.param
    rows = db.execute_sql(
        "WITH RECURSIVE q(name) AS ("
        " SELECT MIN(queue) FROM task WHERE queue IS NOT NULL"
        " UNION ALL"
        " SELECT (SELECT MIN(queue) FROM task WHERE queue > q.name) FROM q WHERE q.name IS NOT NULL)"
        f" SELECT name FROM q WHERE name IS NOT NULL LIMIT {p}", (limit,)).fetchall()
    return [r[0] for r in rows]


def sent_times(db: Database, task_ids: Iterable[str]) -> dict[str, float]:
    """When the store's task-sent events say these tasks were sent."""
    ids = sorted(set(task_ids))
    if not ids:
        return {}
    marks = ", ".join([db.param] * len(ids))
    rows = db.execute_sql(f"SELECT uuid, sent_at FROM task WHERE uuid IN ({marks}) AND sent_at IS NOT NULL", ids)
    return {uuid: float(sent_at) for uuid, sent_at in rows.fetchall()}


# -- the brokers ----------------------------------------------------------------------------------------------

class RedisDepths:
    """LLEN and the tail message of every priority list of each queue, in one pipeline."""

    def __init__(self, app: Celery) -> None:
        connection = app.connection_for_read()
        try:
            channel = connection.default_channel
            self.steps = list(channel.priority_steps)
            self.sep = str(channel.sep)
            self.prefix = str(channel.global_keyprefix or "")
            params = connection_params(channel)
            if params is None:  # Sentinel and the like: kombu's own (plain, unprefixed) pool
                self.client = redis.Redis(connection_pool=channel.pool)
            else:
                options = {**params["connection"], "socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT}
                pool = redis.ConnectionPool(connection_class=CONNECTION_CLASSES[params["connection_class"]],
                                            **options)
                self.client = redis.Redis(connection_pool=pool)
        finally:
            connection.release()

    def sample(self, queues: list[str]) -> tuple[list[Sample], dict[str, list[str]]]:
        """Samples without consumers; and, where no message told its age, the task ids at the lists' tails."""
        keys = {q: redis_keys(q, self.steps, self.sep, self.prefix) for q in queues}
        pipe = self.client.pipeline(transaction=False)
        for q in queues:
            for _, key in keys[q]:
                pipe.llen(key)
                pipe.lindex(key, -1)
        replies = iter(pipe.execute())
        samples: list[Sample] = []
        tails: dict[str, list[str]] = {}
        for q in queues:
            priorities: dict[str, int] = {}
            timestamps: list[float] = []
            ids: list[str] = []
            for step, _ in keys[q]:
                length, tail = int(next(replies) or 0), next(replies)
                priorities[str(step)] = length
                task_id, timestamp = peek_message(tail)
                if timestamp is not None:
                    timestamps.append(timestamp)
                elif task_id:
                    ids.append(task_id)
            sample = Sample(q, depth=sum(priorities.values()), detail={"transport": "redis"})
            if len(priorities) > 1:
                sample.detail["priorities"] = priorities
            if timestamps and not ids:
                sample.oldest_age = max(0.0, time.time() - min(timestamps))
                sample.detail["oldest_from"] = "message"
            elif ids:
                tails[q] = ids
            samples.append(sample)
        return samples, tails

    def close(self) -> None:
        self.client.close()


def amqp_depths(app: Celery, queues: list[str]) -> list[Sample]:
    """Passive declares (ready and consumers) plus the management API's ready/unacked when it answers."""
    samples = []
    with app.connection_for_read() as connection:
        connection.connect()
        channel = connection.channel()
        for q in queues:
            sample = Sample(q, detail={"transport": "amqp"})
            try:
                _, ready, consumers = channel.queue_declare(queue=q, passive=True)
                sample.depth, sample.consumers = int(ready), int(consumers)
            except NotFound:
                sample.detail["missing"] = True
                channel = connection.channel()  # a 404 closes the channel
            samples.append(sample)
        management = management_queues(connection)
    if isinstance(management, str):
        for sample in samples:
            sample.detail["note"] = management
        return samples
    for sample in samples:
        info = management.get(sample.queue)
        if info is None:
            continue
        sample.ready, sample.unacked = info.get("messages_ready"), info.get("messages_unacknowledged")
        sample.detail["source"] = "management"
        head = info.get("head_message_timestamp")
        if isinstance(head, (int, float)) and sample.depth:
            sample.oldest_age = max(0.0, time.time() - float(head))
            sample.detail["oldest_from"] = "message"
    return samples


def management_queues(connection: Any) -> dict[str, dict[str, Any]] | str:
    """`{name: queue}` from GET /api/queues/<vhost> with the broker's credentials, or why not."""
    host = connection.hostname or "localhost"
    vhost = urllib.parse.quote(connection.virtual_host or "/", safe="")
    columns = "name,messages_ready,messages_unacknowledged,consumers,head_message_timestamp"
    request = urllib.request.Request(f"http://{host}:{MANAGEMENT_PORT}/api/queues/{vhost}?columns={columns}")
    credentials = f"{connection.userid or 'guest'}:{connection.password or 'guest'}".encode()
    request.add_header("Authorization", "Basic " + base64.b64encode(credentials).decode())
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - the broker's host
            queues = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"RabbitMQ's management API refused the request ({exc.code}): no ready/unacked counts."
    except (OSError, ValueError):
        return "RabbitMQ's management API is not reachable: no ready/unacked counts."
    return {q["name"]: q for q in queues if isinstance(q, dict) and isinstance(q.get("name"), str)}


# -- one round, and the loop ----------------------------------------------------------------------------------

class QueueSampler:
    """One round of sampling for `app`'s broker; keeps its Redis client between rounds."""

    def __init__(self, app: Celery, db: Database) -> None:
        self.app = app
        self.db = db
        self.transport = str(app.connection_for_read().transport_cls)
        self._redis: RedisDepths | None = None

    @property
    def supported(self) -> bool:
        return self.transport in REDIS_TRANSPORTS + AMQP_TRANSPORTS

    def sample(self) -> list[Sample]:
        with self.db.connection_context():
            consumers = consumers_by_queue(online_inspections(self.db))
            queues = choose_queues(consumers, configured_queues(self.app), task_queue_names(self.db))
        if not queues:
            return []
        if self.transport in AMQP_TRANSPORTS:
            return amqp_depths(self.app, queues)
        samples = self._sample_redis(queues)
        for sample in samples:
            sample.consumers = len(consumers.get(sample.queue, ()))
        return samples

    def _sample_redis(self, queues: list[str]) -> list[Sample]:
        if self._redis is None:
            self._redis = RedisDepths(self.app)
        try:
            samples, tails = self._redis.sample(queues)
        except Exception:
            self.close()  # a new client next round
            raise
        if tails:
            with self.db.connection_context():
                sent = sent_times(self.db, [t for ids in tails.values() for t in ids])
            now = time.time()
            for sample in samples:
                times = [sent[t] for t in tails.get(sample.queue, ()) if t in sent]
                if times:
                    sample.oldest_age = max(0.0, now - min(times))
                    sample.detail["oldest_from"] = "task-sent event"
        return samples

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None


def sample_loop(app: Celery, db: Database, writer: Any, *, interval: float, stop: threading.Event,
                connected: Callable[[], bool], retention: float = RETENTION) -> None:
    """Sample every `interval` seconds while the collector is connected, during this term."""
    sampler = QueueSampler(app, db)
    if not sampler.supported:
        log.info("queue depths: the %r transport is not sampled (Redis and RabbitMQ are)", sampler.transport)
        return
    next_at = 0.0
    try:
        while not stop.is_set() and writer.is_alive():
            if connected() and time.time() >= next_at:
                next_at = time.time() + interval
                at = time.time()
                try:
                    samples = sampler.sample()
                    writer.put_queue_samples([s.row() for s in samples], at, keep_after=at - retention)
                except Exception as exc:  # noqa: BLE001 - the page shows how old the last sample is
                    log.warning("sampling queue depths failed: %s", exc)
                    discard_connection(sampler.db)
            stop.wait(min(0.5, interval))
    finally:
        sampler.close()
