#!/usr/bin/env python
"""Ingest benchmark: how many Celery events per second `webui collect` persists, and at what cost.

For each target rate: a fresh database and collector, a realistic event stream published straight into Redis
(the kombu envelopes a prefork worker and its clients put on the wire), then a wait until the database holds
every task event. Reports loss, lag, the collector's memory and the bytes per task on disk. See README.md.

    python bench/ingest.py --rates 10000,20000,30000,40000 --seconds 10 [--database URL] [--json out.json]
    python bench/ingest.py --grow --tasks-total 200000      # RSS as the store grows
    python bench/ingest.py --publish-only --rates 40000     # the publisher alone
    python bench/ingest.py --dry-run                        # build a stream and decode it back
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parents[1]
TICK = 0.01  # the token bucket's period: events are released and the pipeline flushed every 10 ms
BATCH_LIMIT = 24  # a prefork worker's event buffer (celery/worker/consumer/events.py)
HEARTBEAT_FREQ = 2.0
# A store this close behind the last publish kept up (its batch interval plus our 0.25 s polling); further
# behind, the collector was buffering in memory and its rate is the "stored/s" column, not the target.
KEPT_UP_LAG = 2.0
FAILED_SHARE, RETRIED_SHARE = 0.05, 0.03

# -- the stream: which events, from whom, in what order (pure; no I/O) -----------------------------------

_FRAMES = [  # (file under site-packages, line, function, code): a failed HTTP call, ~1.5 KB in all
    ("celery/app/trace.py", 453, "trace_task", "R = retval = fun(*args, **kwargs)"),
    ("celery/app/trace.py", 736, "__protected_call__", "return self.run(*args, **kwargs)"),
    ("proj/billing/tasks.py", 88, "charge_customer", "receipt = gateway.charge(customer, amount_cents)"),
    ("proj/billing/gateway.py", 141, "charge", "response = self.session.post(self.url, json=payload)"),
    ("requests/sessions.py", 637, "post", 'return self.request("POST", url, data=data, json=json, **kw)'),
    ("requests/sessions.py", 589, "request", "resp = self.send(prep, **send_kwargs)"),
    ("requests/sessions.py", 703, "send", "r = adapter.send(request, **kwargs)"),
    ("requests/adapters.py", 713, "send", "raise ReadTimeout(e, request=request)"),
]
TRACEBACK = (
    "Traceback (most recent call last):\n"
    + "".join(f'  File "/srv/app/.venv/lib/python3.11/site-packages/{path}", line {line}, in {func}\n'
              f"    {code}\n" for path, line, func, code in _FRAMES)
    + "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.payments.example.com', port=443): "
    "Read timed out. (read timeout=10)\n\nDuring handling of the above exception, another exception occurred:"
    "\n\nproj.billing.errors.GatewayUnavailable: payment gateway did not answer within 10s\n"
)
FAILED_EXCEPTION = "GatewayUnavailable('payment gateway did not answer within 10s')"
RETRY_EXCEPTION = "ConnectionError('upstream closed the connection')"


def _task_payload(rng: random.Random) -> tuple[str, str, str, str]:
    """(name, args repr, kwargs repr, result repr) of one task, varied like a real mix of tasks."""
    n, key = rng.randrange(1, 10**6), uuid.UUID(int=rng.getrandbits(128)).hex
    choices = [
        ("proj.tasks.add", f"({n % 977}, {n % 131})", "{}", str(n % 977 + n % 131)),
        ("proj.images.make_thumbnail", f"('s3://media/uploads/{key}.jpg',)",
         "{'width': 320, 'format': 'webp'}", f"'s3://media/thumbs/{key}.webp'"),
        ("proj.billing.charge_customer", f"({n},)", f"{{'amount_cents': {n % 9000}, 'currency': 'EUR', "
         f"'idempotency_key': '{key}'}}", f"{{'status': 'succeeded', 'charge_id': 'ch_{key[:16]}'}}"),
        ("proj.mail.send_email", f"('user{n}@example.com', 'welcome')", "{'locale': 'en'}", "True"),
    ]
    return rng.choice(choices)


@dataclass
class Sender:
    """One process that sends events: its hostname, pid and Lamport clock."""

    hostname: str
    pid: int
    clock: int = 0

    def event(self, type_: str, fields: dict[str, Any], timestamp: float) -> dict[str, Any]:
        self.clock += 1
        return {"hostname": self.hostname, "utcoffset": 0.0, "pid": self.pid, "clock": self.clock, **fields,
                "timestamp": timestamp, "type": type_}


@dataclass
class FakeWorker:
    main: Sender  # task and worker events carry the main process's hostname and pid
    child: Sender  # a pool child re-publishing a retried task sends task-sent as gen<pid>@host
    processed: int = 0
    next_heartbeat: float = 0.0


# (sender, event type, fields), or COUNTDOWN: the task's next events wait for a later tick, as a retried
# task waits for its countdown (so task-retried is on the wire before the second attempt's events).
Step = tuple[Sender, str, dict[str, Any]] | None
COUNTDOWN: Step = None


def task_script(rng: random.Random, client: Sender, workers: Sequence[FakeWorker]) -> list[Step]:
    """Every event one task produces, from whom, in the order Celery 5.7 sends them."""
    task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    name, args, kwargs, result = _task_payload(rng)
    worker = rng.choice(workers)
    worker.processed += 1
    request = {"uuid": task_id, "name": name, "args": args, "kwargs": kwargs, "root_id": task_id,
               "parent_id": None, "retries": 0, "eta": None, "expires": None}
    routing = {"queue": "celery", "exchange": "", "routing_key": "celery"}
    steps: list[Step] = [
        (client, "task-sent", {**request, **routing}),
        (worker.main, "task-received", request),
        (worker.main, "task-started", {"uuid": task_id}),
    ]
    roll = rng.random()
    if roll < FAILED_SHARE:
        failure = {"uuid": task_id, "exception": FAILED_EXCEPTION, "traceback": TRACEBACK}
        return [*steps, (worker.main, "task-failed", failure)]
    if roll < FAILED_SHARE + RETRIED_SHARE:
        first, worker = worker, rng.choice(workers)
        worker.processed += 1
        steps += _retry_steps(first, worker, request, routing)
    succeeded = {"uuid": task_id, "result": result, "runtime": round(rng.expovariate(20.0), 6)}
    return [*steps, (worker.main, "task-succeeded", succeeded)]


def _retry_steps(first: FakeWorker, second: FakeWorker, request: dict[str, Any],
                 routing: dict[str, Any]) -> list[Step]:
    """A retry on `first` and the second attempt on `second`, up to task-started.

    The pool child's re-published message (task-sent, then task-received, retries=1) usually arrives before
    the task-retried event.
    """
    task_id = request["uuid"]
    again = {**request, "parent_id": task_id, "retries": 1,
             "eta": datetime.fromtimestamp(time.time() + 1, timezone.utc).isoformat()}
    retried = {"uuid": task_id, "exception": RETRY_EXCEPTION, "traceback": TRACEBACK[:900]}
    return [(first.child, "task-sent", {**again, **routing}), (second.main, "task-received", again),
            (first.main, "task-retried", retried), COUNTDOWN,
            (second.main, "task-started", {"uuid": task_id})]


class Stream:
    """Interleaves task scripts so about `in_flight` tasks are under way at once, as on a busy cluster."""

    def __init__(self, seed: int = 1, workers: int = 4, in_flight: int = 64, max_tasks: int | None = None):
        self.rng = random.Random(seed)
        self.client = Sender("gen4242@web-1", 4242)
        self.workers = [
            FakeWorker(Sender(f"celery@worker-{i}", 100 + i), Sender(f"gen{200 + i}@worker-{i}", 200 + i))
            for i in range(1, workers + 1)
        ]
        self.in_flight, self.max_tasks = in_flight, max_tasks
        self.active: list[deque[Step]] = []
        self.waiting: list[deque[Step]] = []  # past a COUNTDOWN: back in play at the next take()
        self.tasks_started = self.tasks_finished = 0
        self.closed = False

    def close(self) -> None:
        """Start no new task; the ones under way still run to their end."""
        self.closed = True

    @property
    def done(self) -> bool:
        return self.closed and not self.active and not self.waiting

    def take(self, count: int, timestamp: float) -> list[dict[str, Any]]:
        """The next `count` task events, one tick's worth (fewer once closed and drained)."""
        self.active += self.waiting
        self.waiting = []
        events: list[dict[str, Any]] = []
        while len(events) < count:
            self._refill()
            if not self.active:
                break
            i = self.rng.randrange(len(self.active))
            steps = self.active[i]
            step = steps.popleft()
            if step is None or not steps:
                self.active[i] = self.active[-1]
                self.active.pop()
            if step is None:  # COUNTDOWN
                self.waiting.append(steps)
                continue
            self.tasks_finished += not steps
            sender, type_, fields = step
            events.append(sender.event(type_, fields, timestamp))
        return events

    def _refill(self) -> None:
        while not self.closed and len(self.active) + len(self.waiting) < self.in_flight:
            self.active.append(deque(task_script(self.rng, self.client, self.workers)))
            self.tasks_started += 1
            if self.max_tasks is not None and self.tasks_started >= self.max_tasks:
                self.closed = True

    def start_heartbeats(self, now: float) -> None:
        for i, worker in enumerate(self.workers):
            worker.next_heartbeat = now + i * HEARTBEAT_FREQ / len(self.workers)

    def due_heartbeats(self, now: float) -> list[dict[str, Any]]:
        """A worker-heartbeat from each worker whose 2-second interval is up."""
        due = [w for w in self.workers if now >= w.next_heartbeat]
        for worker in due:
            worker.next_heartbeat += HEARTBEAT_FREQ
        return [w.main.event("worker-heartbeat", {
            "freq": HEARTBEAT_FREQ, "active": self.rng.randint(0, 2), "processed": w.processed,
            "loadavg": [round(x, 2) for x in os.getloadavg()], "sw_ident": "py-celery", "sw_ver": "5.7.0",
            "sw_sys": "Linux"}, time.time()) for w in due]


# -- the wire: kombu envelopes on Redis PUB/SUB ---------------------------------------------------------


def envelope(body: dict[str, Any] | list[dict[str, Any]], hostname: str, routing_key: str) -> str:
    """The message kombu's Redis transport publishes for an event (or a `task.multi` list of them)."""
    return json.dumps({
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": hostname},
        "properties": {
            "delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
            "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    })


def redis_db(broker_url: str) -> int:
    return int(urlsplit(broker_url).path.strip("/") or 0)


Message = tuple[str, str]  # (channel, payload)


class Publisher:
    """Encodes events as Celery sends them on Redis: task-sent and worker events one per message; each
    worker's other task events buffered and sent as lists of up to 24 on `task.multi`. Messages collect in
    `outbox`; `keep_events` also keeps the events, in the order sent (for the dry run)."""

    def __init__(self, db: int, keep_events: bool = False) -> None:
        self.prefix = f"/{db}.celeryev/"
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.outbox: list[Message] = []
        self.events: list[dict[str, Any]] | None = [] if keep_events else None
        self.task_events = self.worker_events = self.messages = self.bytes = 0

    def send(self, event: dict[str, Any]) -> None:
        type_, hostname = event["type"], event["hostname"]
        if self.events is not None:
            self.events.append(event)
        if not type_.startswith("task-"):
            self.worker_events += 1
            self._put(hostname, type_.replace("-", "."), event)
            return
        self.task_events += 1
        if type_ == "task-sent":
            self._put(hostname, "task.sent", event)
            return
        batch = self.pending.setdefault(hostname, [])
        batch.append(event)
        if len(batch) >= BATCH_LIMIT:
            self._put(hostname, "task.multi", self.pending.pop(hostname))

    def flush(self) -> list[Message]:
        """Send every partial batch, as a worker's event loop does each iteration; return the outbox."""
        for hostname in list(self.pending):
            self._put(hostname, "task.multi", self.pending.pop(hostname))
        messages, self.outbox = self.outbox, []
        return messages

    def _put(self, hostname: str, routing_key: str, body: dict[str, Any] | list[dict[str, Any]]) -> None:
        payload = envelope(body, hostname, routing_key)
        self.outbox.append((self.prefix + routing_key, payload))
        self.messages += 1
        self.bytes += len(payload)


@dataclass
class Tick:
    messages: list[Message]
    tasks_finished: int  # by the end of this tick


@dataclass
class Window:
    start: float
    end: float  # monotonic time of the last pipeline execute

    @property
    def seconds(self) -> float:
        return self.end - self.start


class Feed:
    """A stream cut into 10 ms ticks of `rate` task events per second (a token bucket), for `seconds` or until
    the stream closes, then the tasks under way run to their end.

    `prebuild` encodes every tick before publishing, so the publisher takes little CPU from the collector
    while it is being measured (on 2 cores it matters); events are then stamped with the time the tick was
    built, not sent: like workers whose clocks run a few seconds behind. Heartbeats are always made live."""

    def __init__(self, stream: Stream, db: int, rate: float, seconds: float | None, prebuild: bool) -> None:
        self.stream, self.rate, self.seconds = stream, rate, seconds
        self.tasks, self.beats = Publisher(db), Publisher(db)
        self.ticks: Iterable[Tick] = list(self._ticks()) if prebuild else self._ticks()

    def _ticks(self) -> Iterator[Tick]:
        allowance, n, base = 0.0, 0, time.time()
        while not self.stream.done:
            if self.seconds is not None and n * TICK >= self.seconds:
                self.stream.close()
            allowance += self.rate * TICK
            released = int(allowance)
            allowance -= released
            for event in self.stream.take(released, base + n * TICK):
                self.tasks.send(event)
            yield Tick(self.tasks.flush(), self.stream.tasks_finished)
            n += 1

    def publish(self, client: redis.Redis, on_tick: Callable[[Tick], None] | None = None) -> Window:
        """Put each tick on the wire at its time (back to back if behind), one pipeline round trip per tick."""
        pipe = client.pipeline(transaction=False)
        start = time.monotonic()
        self.stream.start_heartbeats(start)
        for n, tick in enumerate(self.ticks):
            time.sleep(max(0.0, start + n * TICK - time.monotonic()))
            for event in self.stream.due_heartbeats(time.monotonic()):
                self.beats.send(event)
            for channel, payload in tick.messages + self.beats.flush():
                pipe.publish(channel, payload)
            pipe.execute()
            if on_tick is not None:
                on_tick(tick)
        return Window(start, time.monotonic())


# -- the collector under test and what it costs -----------------------------------------------------------


def read_proc_kb(pid: int, key: str) -> int | None:
    """A `/proc/<pid>/status` figure in kB (VmRSS, VmHWM), or None once the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith(f"{key}:")), None)


def mb(kb: int | None) -> float:
    return round((kb or 0) / 1024, 1)


def process_tree_kb(pid: int, key: str) -> int | None:
    """`key` (e.g. VmRSS) of a process plus its children: the collector's event reader process counts too."""
    total = read_proc_kb(pid, key)
    if total is None:
        return None
    return total + sum(read_proc_kb(child, key) or 0 for child in _children(pid))


def _children(pid: int) -> list[int]:
    found = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):  # a child belongs to the thread that made it
        try:
            found += [int(child) for child in listing.read_text().split()]
        except OSError:
            continue
    return found


def process_tree_cpu(pid: int) -> dict[int, tuple[str, int, float]]:
    """CPU seconds (user + system) so far of a process and all its descendants: {pid: (comm, ppid, seconds)}."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, int, float]] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
        except OSError:
            continue
        comm, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        found[current] = (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)  # ppid, utime, stime
        pending += _children(current)
    return found


class RssSampler:
    """Samples the VmRSS of a process and its children every `interval` seconds on a background thread."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[int] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            kb = process_tree_kb(self.pid, "VmRSS")
            if kb is not None:
                self.samples.append(kb)
            if self._stopped.wait(self.interval):
                return


class Collector:
    """`python -m webui collect` as a child process, logging to a file."""

    def __init__(self, broker: str, database: str, log_path: Path, extra_args: Sequence[str]) -> None:
        argv = [sys.executable, "-m", "webui", "collect", "--broker", broker, "--database", database,
                "--no-enable-events", "--log-level", "warning", *extra_args]
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_subscribed(self, client: redis.Redis, patterns_before: int, timeout: float = 20.0) -> None:
        """Wait until one more PSUBSCRIBE pattern exists on the broker than before the collector started."""
        deadline = time.monotonic() + timeout
        while client.pubsub_numpat() <= patterns_before:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"collector not subscribed after {timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, SIGKILL after `timeout`; the exit code (None if it had to be killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()
                return None
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


# -- the database under test ------------------------------------------------------------------------------


class Store(Protocol):
    kind: str
    url: str

    def count_events(self) -> int | None: ...
    def size_bytes(self, checkpoint: bool = False) -> int: ...
    def close(self, keep: bool) -> None: ...


class SqliteStore:
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        if path.exists():
            raise SystemExit(f"{path} exists: each run needs a fresh database")
        self.path = path
        self.url = f"sqlite:///{path}"

    def _connect(self) -> sqlite3.Connection:
        # mode=rw: never create the file ourselves, and never hold a transaction open between polls.
        return sqlite3.connect(f"{self.path.as_uri()}?mode=rw", uri=True, timeout=10, isolation_level=None)

    def count_events(self) -> int | None:
        try:
            conn = self._connect()
            try:
                return int(conn.execute("SELECT COUNT(*) FROM task_event").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error:  # not created yet, or busy
            return None

    def size_bytes(self, checkpoint: bool = False) -> int:
        if checkpoint and self.path.exists():
            conn = self._connect()
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
        files = [self.path, Path(f"{self.path}-wal")]
        return sum(f.stat().st_size for f in files if f.exists())

    def close(self, keep: bool) -> None:
        if not keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)


class PostgresStore:
    kind = "postgresql"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"webui_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{self.name}"))

    def _scalar(self, query: str) -> int:
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0

    def count_events(self) -> int | None:
        try:
            return self._scalar("SELECT count(*) FROM task_event")
        except psycopg.Error:  # not created yet
            return None

    def size_bytes(self, checkpoint: bool = False) -> int:
        return self._scalar("SELECT pg_database_size(current_database())")

    def close(self, keep: bool) -> None:
        if keep:
            return
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                         (self.name,))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(self.name)))


def fresh_store(database: str | None, workdir: Path, label: str) -> Store:
    """A new, empty database for one run: SQLite in `workdir`, beside a given SQLite path, or on a server."""
    if database is None:
        return SqliteStore(workdir / f"webui-{label}.sqlite3")
    scheme = urlsplit(database).scheme
    if scheme == "sqlite":
        given = Path(database.removeprefix("sqlite:///")).resolve()
        return SqliteStore(given.with_name(f"{given.stem}-{label}{given.suffix}"))
    if scheme in ("postgres", "postgresql"):
        return PostgresStore(database)
    raise SystemExit(f"--database must be sqlite:///PATH or postgresql://USER@HOST/DB, not {database!r}")


def wait_persisted(store: Store, expected: int, idle_timeout: float, poll: float = 0.25) -> tuple[int, float]:
    """Poll until the store holds `expected` task events or makes no progress for `idle_timeout` seconds.

    Returns the count and the monotonic time it last changed (the last commit, to within `poll`)."""
    count, changed = -1, time.monotonic()
    while True:
        seen = store.count_events() or 0
        now = time.monotonic()
        if seen != count:
            count, changed = seen, now
        if count >= expected or now - changed > idle_timeout:
            return count, changed
        time.sleep(poll)


# -- one run ------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    target_rate: int  # task events per second asked for
    database: str
    tasks: int = 0  # tasks published, every one finished (succeeded or failed)
    task_events: int = 0  # published; what task_event must end up holding
    worker_events: int = 0  # heartbeats, on top
    messages: int = 0
    publish_seconds: float = 0.0
    publish_rate: float = 0.0  # task events per second actually published
    persisted: int = 0
    lost: int = 0
    lag_seconds: float = 0.0  # last publish to last commit (to within 0.25 s)
    persisted_rate: float = 0.0  # persisted / (first publish to last commit)
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_at_mb: dict[str, float] = field(default_factory=dict)  # --grow: share of tasks published -> RSS
    db_bytes_empty: int = 0  # after the collector created its schema, before any event
    db_bytes: int = 0
    bytes_per_task: float = 0.0  # (db_bytes - db_bytes_empty) / tasks
    collector_exit: int | None = None
    collector_log: str = ""


class RssCheckpoints:
    """on_tick hook: the collector's RSS when 10%, 50% and 100% of `total` tasks have been published."""

    def __init__(self, pid: int, total: int, shares: Iterable[float] = (0.1, 0.5, 1.0)) -> None:
        self.pid, self.total = pid, total
        self.pending = sorted(shares)
        self.taken: dict[str, float] = {}

    def __call__(self, tick: Tick) -> None:
        while self.pending and tick.tasks_finished >= self.pending[0] * self.total:
            self.taken[f"{self.pending.pop(0):.0%}"] = mb(process_tree_kb(self.pid, "VmRSS"))


@dataclass
class Options:
    broker: str
    database: str | None
    workdir: Path
    seed: int = 1
    workers: int = 4
    in_flight: int = 64
    idle_timeout: float = 10.0
    prebuild: bool = True
    keep: bool = False
    collector_args: list[str] = field(default_factory=list)

    def feed(self, rate: float, seconds: float | None, max_tasks: int | None = None,
             prebuild: bool | None = None) -> Feed:
        stream = Stream(self.seed, self.workers, self.in_flight, max_tasks)
        prebuild = self.prebuild if prebuild is None else prebuild
        return Feed(stream, redis_db(self.broker), rate, seconds, prebuild)


def run_once(opts: Options, rate: int, seconds: float | None, max_tasks: int | None = None) -> RunResult:
    """Fresh database and collector, publish, wait for the store to catch up, measure, stop."""
    label = f"{rate}" if max_tasks is None else f"grow-{max_tasks}"
    # --grow builds live: its rate is sustainable by design, and 200,000 prebuilt tasks would take ~0.5 GB.
    feed = opts.feed(rate, seconds, max_tasks, prebuild=opts.prebuild and max_tasks is None)
    client = redis.Redis.from_url(opts.broker)
    store = fresh_store(opts.database, opts.workdir, label)
    patterns_before = client.pubsub_numpat()
    collector = Collector(opts.broker, store.url, opts.workdir / f"collector-{label}.log", opts.collector_args)
    try:
        collector.wait_subscribed(client, patterns_before)
        result = RunResult(rate, store.kind, collector_log=str(collector.log_path))
        ingest(result, opts, client, store, collector, feed)
        result.collector_exit = collector.stop()
        result.db_bytes = store.size_bytes(checkpoint=True)
        result.bytes_per_task = round((result.db_bytes - result.db_bytes_empty) / max(result.tasks, 1), 1)
        return result
    finally:
        collector.stop()
        store.close(opts.keep)
        client.close()


def ingest(result: RunResult, opts: Options, client: redis.Redis, store: Store, collector: Collector,
           feed: Feed) -> None:
    """Publish the feed into a running collector and measure what it made of it."""
    result.db_bytes_empty = store.size_bytes()
    sampler = RssSampler(collector.pid).start()
    result.rss_start_mb = mb(process_tree_kb(collector.pid, "VmRSS"))
    max_tasks = feed.stream.max_tasks
    checkpoints = RssCheckpoints(collector.pid, max_tasks) if max_tasks else None
    window = feed.publish(client, checkpoints)

    published = feed.tasks.task_events
    persisted, last_commit = wait_persisted(store, published, opts.idle_timeout)
    result.rss_end_mb = mb(process_tree_kb(collector.pid, "VmRSS"))
    sampler.stop()
    result.rss_peak_mb = max(mb(process_tree_kb(collector.pid, "VmHWM")), mb(max(sampler.samples, default=0)))
    result.rss_at_mb = checkpoints.taken if checkpoints else {}
    result.tasks, result.task_events = feed.stream.tasks_finished, published
    result.worker_events = feed.beats.worker_events
    result.messages = feed.tasks.messages + feed.beats.messages
    result.publish_seconds = round(window.seconds, 3)
    result.publish_rate = round(published / window.seconds)
    result.persisted, result.lost = persisted, published - persisted
    result.lag_seconds = round(max(0.0, last_commit - window.end), 2)
    result.persisted_rate = round(persisted / max(last_commit - window.start, 1e-9))


# -- the other modes --------------------------------------------------------------------------------------


def publish_only(opts: Options, rates: Sequence[int], seconds: float) -> None:
    """Publish at each rate with no collector: what the publisher itself can do on this machine."""
    client = redis.Redis.from_url(opts.broker)
    for rate in rates:
        feed = opts.feed(rate, seconds)
        window = feed.publish(client)
        events, messages = feed.tasks.task_events, feed.tasks.messages + feed.beats.messages
        print(f"target {rate:>7,} ev/s: {events:,} task events (+{feed.beats.worker_events} heartbeats)"
              f" in {messages:,} messages, {feed.tasks.bytes / 1e6:,.1f} MB, {window.seconds:.2f}s"
              f" = {events / window.seconds:,.0f} ev/s")
    client.close()


REQUEST_FIELDS = {"uuid", "name", "args", "kwargs", "retries", "eta", "expires", "root_id", "parent_id"}
COMMON_FIELDS = {"hostname", "utcoffset", "pid", "clock", "timestamp", "type"}
REQUIRED_FIELDS = {  # what Celery 5.7 puts in each event type, beyond COMMON_FIELDS
    "task-sent": REQUEST_FIELDS | {"queue", "exchange", "routing_key"},
    "task-received": REQUEST_FIELDS,
    "task-started": {"uuid"},
    "task-succeeded": {"uuid", "result", "runtime"},
    "task-failed": {"uuid", "exception", "traceback"},
    "task-retried": {"uuid", "exception", "traceback"},
    "worker-heartbeat": {"freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys"},
}
SCRIPTS = {  # every order of event types one task may produce
    ("task-sent", "task-received", "task-started", "task-succeeded"),
    ("task-sent", "task-received", "task-started", "task-failed"),
    ("task-sent", "task-received", "task-started", "task-sent", "task-received", "task-retried",
     "task-started", "task-succeeded"),
}


def decode_message(channel: str, payload: str, prefix: str) -> list[dict[str, Any]]:
    """Decode one published message the way kombu does and check it is what Celery would have sent."""
    from kombu.serialization import loads

    message = json.loads(payload)
    properties = message["properties"]
    routing_key = properties["delivery_info"]["routing_key"]
    _check(channel == prefix + routing_key, f"channel {channel} for routing key {routing_key}")
    _check(properties["delivery_info"]["exchange"] == "celeryev" and properties["body_encoding"] == "base64"
           and properties["delivery_mode"] == 1, f"properties {properties}")
    body = loads(base64.b64decode(message["body"]), message["content-type"], message["content-encoding"])
    events = body if isinstance(body, list) else [body]
    if routing_key == "task.multi":
        _check(1 <= len(events) <= BATCH_LIMIT, f"{len(events)} events in one task.multi message")
        _check(all(e["type"] not in ("task-sent",) and e["type"].startswith("task-") for e in events),
               "task.multi holds only worker-side task events")
    else:
        _check(isinstance(body, dict) and body["type"] == routing_key.replace(".", "-"),
               f"{routing_key} carries one {routing_key.replace('.', '-')} event")
    for event in events:
        missing = (COMMON_FIELDS | REQUIRED_FIELDS[event["type"]]) - event.keys()
        _check(not missing, f"{event['type']} lacks {sorted(missing)}")
        _check(event["hostname"] == message["headers"]["hostname"], "header hostname is the sender's")
    return events


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"dry run: bad stream: {what}")


def check_tasks(emitted: list[dict[str, Any]], arrived: list[dict[str, Any]]) -> Counter[str]:
    """What arrives is what was emitted, each task's events (in emission order) follow a known script, and
    Celery's own State, fed in arrival order, ends every task SUCCESS or FAILURE."""
    from celery.events.state import State

    def by_sender(events: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
        return {(e["hostname"], e["clock"]): e for e in events}  # a sender's clock never repeats

    _check(len(arrived) == len(emitted) and by_sender(arrived) == by_sender(emitted),
           "every event arrives once, intact")
    scripts: dict[str, list[str]] = {}
    for event in emitted:
        if event["type"].startswith("task-"):
            scripts.setdefault(event["uuid"], []).append(event["type"])
    unknown = [s for s in scripts.values() if tuple(s) not in SCRIPTS]
    _check(not unknown, f"unexpected task scripts, e.g. {unknown[:1]}")
    state = State(max_tasks_in_memory=10**6)
    for event in arrived:
        state.event({**event, "local_received": event["timestamp"]})
    states = Counter(task.state for task in state.tasks.values())
    _check(set(states) <= {"SUCCESS", "FAILURE"}, f"Celery's State left tasks in {states}")
    return states


def dry_run(opts: Options, tasks: int) -> None:
    """Build a stream of `tasks` tasks without any broker, decode every message back and check it."""
    stream = Stream(opts.seed, opts.workers, opts.in_flight, max_tasks=tasks)
    publisher = Publisher(redis_db(opts.broker), keep_events=True)
    published: list[Message] = []
    stream.start_heartbeats(0.0)
    while not stream.done:
        events_so_far = publisher.task_events
        for event in stream.take(500, time.time()) + stream.due_heartbeats(events_so_far / 5000):
            publisher.send(event)  # heartbeats as if at 5,000 events/s
        published += publisher.flush()
    arrived = [e for channel, payload in published for e in decode_message(channel, payload, publisher.prefix)]
    states = check_tasks(publisher.events or [], arrived)
    types = Counter(e["type"] for e in arrived)
    multi = sum(channel.endswith("task.multi") for channel, _ in published)
    batched = publisher.task_events - types["task-sent"]
    tasks, task_events = stream.tasks_finished, publisher.task_events
    print(f"dry run OK: {tasks:,} tasks, {task_events:,} task events ({task_events / tasks:.2f} per task)"
          f" + {publisher.worker_events} heartbeats in {publisher.messages:,} messages; {batched:,} events"
          f" in {multi:,} task.multi messages; {publisher.bytes / tasks:,.0f} bytes on the wire per task")
    print("  event types: " + ", ".join(f"{t} {n:,}" for t, n in sorted(types.items())))
    print(f"  Celery's State: {dict(states)}; traceback {len(TRACEBACK):,} chars")


# -- reporting and the command line -----------------------------------------------------------------------

COLUMNS = [  # header, width, how to show a result
    ("target/s", 9, lambda r: f"{r.target_rate:,}"),
    ("db", 10, lambda r: r.database),
    ("tasks", 9, lambda r: f"{r.tasks:,}"),
    ("published", 10, lambda r: f"{r.task_events:,}"),
    ("pub/s", 8, lambda r: f"{r.publish_rate:,}"),
    ("persisted", 10, lambda r: f"{r.persisted:,}"),
    ("lost", 8, lambda r: f"{r.lost:,}"),
    ("lag s", 6, lambda r: f"{r.lag_seconds:.2f}"),
    ("stored/s", 9, lambda r: f"{r.persisted_rate:,}"),
    ("RSS MB start/peak/end", 22, lambda r: f"{r.rss_start_mb:.0f}/{r.rss_peak_mb:.0f}/{r.rss_end_mb:.0f}"),
    ("B/task", 7, lambda r: f"{r.bytes_per_task:,.0f}"),
    ("exit", 4, lambda r: str(r.collector_exit)),
]


def print_table(results: Sequence[RunResult]) -> None:
    print("  ".join(h.rjust(w) for h, w, _ in COLUMNS))
    for result in results:
        print("  ".join(show(result).rjust(w) for _, w, show in COLUMNS))
        if result.rss_at_mb:
            print("  RSS as tasks were published: "
                  + ", ".join(f"{share}: {rss:.0f} MB" for share, rss in result.rss_at_mb.items()))


def best_rate(results: Sequence[RunResult], max_lag: float = math.inf) -> int | None:
    """The highest target rate that lost nothing (and, given `max_lag`, caught up within it)."""
    rates = [r.target_rate for r in results if r.lost == 0 and r.lag_seconds <= max_lag]
    return max(rates, default=None)


def environment(broker: str) -> dict[str, Any]:
    client = redis.Redis.from_url(broker)
    try:
        redis_version = client.info("server")["redis_version"]
    finally:
        client.close()
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True,
                                text=True).stdout.strip() or None
    except OSError:  # no git
        commit = None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
        "platform": platform.platform(), "cpus": os.cpu_count(), "redis": redis_version, "commit": commit,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="10000,20000,30000,40000",
                        help="task events/s to try, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to publish at each rate")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9",
                        help="Redis URL; its db number isolates the bench's event channels")
    parser.add_argument("--database", help="sqlite:///PATH (runs write PATH-<rate>) or a PostgreSQL URL where"
                        " each run creates and drops a database; default: SQLite in a temporary directory")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--grow", action="store_true", help="one run of --tasks-total tasks at --grow-rate,"
                        " reporting RSS at 10%%, 50%% and 100%% of them")
    parser.add_argument("--tasks-total", type=int, help="tasks for --grow (default 200,000) and --dry-run"
                        " (default 5,000)")
    parser.add_argument("--grow-rate", type=int, default=10_000, help="task events/s for --grow")
    parser.add_argument("--publish-only", action="store_true", help="publish at each rate; no collector")
    parser.add_argument("--dry-run", action="store_true", help="build a stream, decode it back, check it")
    parser.add_argument("--workers", type=int, default=4, help="fake workers sending events")
    parser.add_argument("--in-flight", type=int, default=64, help="tasks under way at once")
    parser.add_argument("--idle-timeout", type=float, default=10.0, help="give up waiting for the store after"
                        " this many seconds without progress")
    parser.add_argument("--collector-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for `webui collect`, e.g. --collector-arg=--batch-size=10000")
    parser.add_argument("--live", action="store_true", help="encode events while publishing instead of"
                        " before (costs the collector CPU on a small machine)")
    parser.add_argument("--keep", action="store_true", help="keep databases and collector logs")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rates = [int(rate) for rate in args.rates.split(",")]
    needs_workdir = not (args.dry_run or args.publish_only)
    workdir = Path(tempfile.mkdtemp(prefix="webui-bench-") if needs_workdir else tempfile.gettempdir())
    opts = Options(args.broker, args.database, workdir, args.seed, args.workers, args.in_flight,
                   args.idle_timeout, not args.live, args.keep, args.collector_arg)
    if args.dry_run:
        dry_run(opts, args.tasks_total or 5_000)
        return 0
    if args.publish_only:
        publish_only(opts, rates, args.seconds)
        return 0
    results: list[RunResult] = []
    try:
        if args.grow:
            results.append(run_once(opts, args.grow_rate, None, max_tasks=args.tasks_total or 200_000))
        else:
            for rate in rates:
                results.append(run_once(opts, rate, args.seconds))
    except RuntimeError as error:  # the collector would not start or subscribe: its log says why
        print(f"ingest: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep or not results or any(r.lost or r.collector_exit for r in results):
            print(f"collector logs{' and databases' if args.keep else ''} kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results, args)
    return 0


def report(results: Sequence[RunResult], args: argparse.Namespace) -> None:
    print_table(results)
    none_lost, kept_up = best_rate(results), best_rate(results, KEPT_UP_LAG)
    print(f"headline: {none_lost or 0:,} task events/s with none lost; the store kept up (lag <= {KEPT_UP_LAG:g}s)"
          f" to {kept_up or 0:,} task events/s")
    if args.json:
        document = {"environment": environment(args.broker), "options": vars(args),
                    "results": [asdict(r) for r in results], "headline_rate": none_lost, "kept_up_rate": kept_up}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
