"""The live hub: one thread per web process watches the store's change markers and tells open pages what changed.

The contract pages build on
---------------------------
- A page opts in by having an element with `data-live` (or `<body data-live>`); `static/js/live.js` then opens
  the WebSocket `/ws/live` (under the app's path prefix) and, for each changed topic, dispatches a DOM event
  named `live:<topic>` on `document.body`. Any element refreshes itself with htmx:
  `hx-get="…" hx-trigger="live:tasks from:body"`.
- Topics (`TOPICS`):
    `tasks`     a task event was stored, a task appeared (state, retries, results …) or logged a line
    `events`    a task event or a worker online/offline transition was stored (the events stream)
    `workers`   a worker was seen (heartbeats: every couple of seconds), went on/offline, or answered an inspect
    `overview`  tasks changed, a worker went on/offline, the collector's state or its gaps changed
    `queues`    every 10 s of collector heartbeat (queue depths are sampled, not evented)
- Messages on the socket, JSON: `{"type": "hello", "topics": [...]}` once, `{"type": "changed",
  "topics": [...]}` at most once every `live_interval` seconds (0.5; once after a quiet spell, sooner: see
  `Throttle`), `{"type": "ping"}` every 25 s. Beyond `live_max_sockets` sockets in one process the server
  closes with code 1013 and a reason; the page then polls.
- When the socket is down (or over the cap) live.js dispatches every topic every 10 s instead, so a page never
  freezes silently; the top-bar pause button stops all dispatching.
- Nothing falls between the page's render and its socket: the page carries the store's change markers as read
  before its queries ran (`<body data-live-mark>`, `encode_mark`), the socket hands them back (`?since=`),
  and the hub's first look after it subscribed tells it what changed since (`Subscription.catch_up`). A
  socket without a readable mark (a reconnect, whose page may have missed anything) is told every topic once.

How changes are noticed: the collector may be another process or host, and the store is the only meeting
point, so the hub reads the store's change markers (`read_snapshot`). Each is a MAX over a primary key or an
indexed column, or a read of tiny tables, so a look costs next to nothing however many pages are open.
- PostgreSQL: the writer NOTIFYs in each batch's transaction that changed something, and the hub holds one
  LISTEN connection (`webui.store.change_feed`), so it looks within milliseconds of a commit. It still polls
  every `LISTENING_POLL_INTERVAL` seconds (changes made without a NOTIFY), and every `POLL_INTERVAL` while it
  cannot listen.
- SQLite (one host): a poll every `SQLITE_POLL_INTERVAL` seconds.
Nothing is read, and no LISTEN connection is held, while no socket is open.
"""
from __future__ import annotations

import base64
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from webui.store.change_feed import Listener, has_change_feed

log = logging.getLogger(__name__)

TOPICS = ("tasks", "events", "workers", "overview", "queues")
# Set when this server process is asked to stop (webui.serve hooks gunicorn's SIGTERM): every live socket then
# closes with "going away", so a restart is not held up by open pages, and the pages reconnect to the new one.
SHUTTING_DOWN = threading.Event()
POLL_INTERVAL = 1.0  # seconds between looks at a PostgreSQL store while its change feed is down
LISTENING_POLL_INTERVAL = 5.0  # seconds between looks while LISTENing: the feed wakes the hub at each commit
SQLITE_POLL_INTERVAL = 0.1  # seconds: SQLite has no feed; a look costs ~0.015 ms (docs/performance.md)
SEND_INTERVAL = 0.5  # seconds: at most one message per socket this often (the `live_interval` setting)
QUEUES_EVERY = 10.0  # seconds of collector heartbeat between `queues` notices


@dataclass(frozen=True)
class Snapshot:
    """The store's change markers at one moment; two snapshots differ where something changed."""

    task_event_received: float | None = None  # MAX(task_event.received): indexed
    task_max_id: int | None = None  # MAX(task.id): primary key
    task_log_max_id: int | None = None  # MAX(task_log.id): primary key (the companion's task logs)
    worker_event_max_id: int | None = None  # MAX(worker_event.id): primary key (online/offline transitions)
    worker_last_seen: float | None = None  # MAX(worker.last_seen): one row per worker
    inspection_at: float | None = None  # MAX(worker_inspection.at): one row per worker
    gaps: tuple[Any, ...] = ()  # (MAX(id), closed count) of collector_gap
    collector: tuple[Any, ...] = ()  # the collector's leader, connection, warning, error and drop count
    heartbeat_at: float | None = None


_MARK_FIELDS = tuple(Snapshot.__dataclass_fields__)
_TUPLE_FIELDS = ("gaps", "collector")
MAX_MARK_LENGTH = 2000  # a mark of ours is a few hundred characters; anything longer is not one


def encode_mark(snapshot: Snapshot) -> str:
    """The snapshot as URL-safe text, for a page to hand back to `/ws/live?since=`."""
    values = [getattr(snapshot, name) for name in _MARK_FIELDS]
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_mark(text: str | None) -> Snapshot | None:
    """The snapshot a page was rendered at, or None when `text` is not a mark of ours (absent, cut, forged)."""
    if not text or len(text) > MAX_MARK_LENGTH:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        return None
    if not isinstance(values, list) or len(values) != len(_MARK_FIELDS):
        return None
    fields = dict(zip(_MARK_FIELDS, values, strict=True))
    for name in _TUPLE_FIELDS:
        if not isinstance(fields[name], list):
            return None
        fields[name] = tuple(fields[name])
    if any(isinstance(v, (dict, list)) for v in fields.values()):
        return None
    return Snapshot(**fields)


def changed_topics(before: Snapshot, after: Snapshot, queues_every: float = QUEUES_EVERY) -> set[str]:
    """The topics whose pages should refresh, going from `before` to `after`."""
    topics = set()
    task_event = before.task_event_received != after.task_event_received
    transition = before.worker_event_max_id != after.worker_event_max_id
    if task_event or before.task_max_id != after.task_max_id or before.task_log_max_id != after.task_log_max_id:
        topics.add("tasks")
    if task_event or transition:
        topics.add("events")
    if transition or before.worker_last_seen != after.worker_last_seen or before.inspection_at != after.inspection_at:
        topics.add("workers")
    if "tasks" in topics or transition or before.collector != after.collector or before.gaps != after.gaps:
        topics.add("overview")
    if _tick(before.heartbeat_at, queues_every) != _tick(after.heartbeat_at, queues_every):
        topics.add("queues")
    return topics


def _tick(epoch: float | None, every: float) -> int | None:
    return None if epoch is None else math.floor(epoch / every)


_MARKERS_SQL = (
    "SELECT (SELECT MAX(received) FROM task_event), (SELECT MAX(id) FROM task), "
    "(SELECT MAX(id) FROM worker_event), (SELECT MAX(last_seen) FROM worker), "
    "(SELECT MAX(at) FROM worker_inspection), (SELECT MAX(id) FROM collector_gap), "
    "(SELECT COUNT(*) FROM collector_gap WHERE ended_at IS NOT NULL), (SELECT MAX(id) FROM task_log)"
)
_COLLECTOR_SQL = ("SELECT leader, connected, warning, last_error, events_dropped, heartbeat_at "
                  "FROM collector_status WHERE id = 1")


def read_snapshot(db: Any) -> Snapshot:
    """Two small queries against the store (see `Snapshot` for why each is cheap)."""
    markers = db.execute_sql(_MARKERS_SQL).fetchone()
    status = db.execute_sql(_COLLECTOR_SQL).fetchone()
    return Snapshot(
        task_event_received=markers[0], task_max_id=markers[1], worker_event_max_id=markers[2],
        worker_last_seen=markers[3], inspection_at=markers[4], gaps=(markers[5], markers[6]),
        task_log_max_id=markers[7],
        collector=tuple(status[:5]) if status else (), heartbeat_at=status[5] if status else None,
    )


class Throttle:
    """Collects topics and lets them out at most once per `interval` seconds (pure: the caller gives the time).

    Pages that hear one change at the same moment would otherwise stay in step: every socket told at once, each
    interval, and every page asking the server at the same instant (50 pages: 50 requests in one burst, the
    last answered only when the whole burst is done). So a message that ends a quiet spell (its topics came
    when the socket was free to send: it goes at once) puts off the next interval by a random part of one
    (`phase`, in [0, 1)): the next message waits one to two intervals, once, and the sockets' cadences spread
    over the interval. Never sooner than one: that would let a trickle of changes, each ending a quiet spell,
    come faster than once an interval. While topics keep coming, each socket keeps its own cadence."""

    def __init__(self, interval: float = SEND_INTERVAL, phase: Callable[[], float] = random.random) -> None:
        self.interval = interval
        self.pending: set[str] = set()
        self.last_sent = -math.inf
        self._phase = phase
        self._pending_since = -math.inf

    def add(self, topics: Iterable[str], now: float) -> None:
        if not self.pending:
            self._pending_since = now
        self.pending.update(topics)

    def wait_time(self, now: float) -> float | None:
        """Seconds until `take` would give something; None while nothing is pending."""
        if not self.pending:
            return None
        return max(0.0, self.last_sent + self.interval - now)

    def take(self, now: float) -> list[str]:
        """The pending topics (sorted) if one interval has passed since the last take; else nothing."""
        if not self.pending or now < self.last_sent + self.interval:
            return []
        quiet = self._pending_since > self.last_sent + self.interval
        topics, self.pending = sorted(self.pending), set()
        self.last_sent = now + self.interval * self._phase() if quiet else now
        return topics


class Subscription:
    """One socket's mailbox: the hub offers topics, the socket's thread waits for them, throttled.

    `baseline` is the snapshot the socket's page was rendered at (None: unknown). The hub's first look after
    the subscription compares it with what it reads, so a change between the render and the socket is told,
    then clears it (`catch_up`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, interval: float = SEND_INTERVAL,
                 baseline: Snapshot | None = None, phase: Callable[[], float] = random.random) -> None:
        self._clock = clock
        self._throttle = Throttle(interval, phase)
        self._ready = threading.Condition()
        self._baseline: Snapshot | None = baseline
        self._caught_up = False

    def catch_up(self, current: Snapshot) -> None:
        """Offer what changed between the page's render and `current` (every topic when that is unknown);
        once: later looks offer only what changed between looks."""
        if self._caught_up:
            return
        self._caught_up = True
        baseline, self._baseline = self._baseline, None
        topics = TOPICS if baseline is None else changed_topics(baseline, current)
        if topics:
            self.offer(topics)

    def offer(self, topics: Iterable[str]) -> None:
        with self._ready:
            self._throttle.add(topics, self._clock())
            self._ready.notify()

    def wait(self, timeout: float) -> list[str]:
        """Topics to send now, or [] once `timeout` seconds pass without any being due."""
        deadline = self._clock() + timeout
        with self._ready:
            while True:
                now = self._clock()
                topics = self._throttle.take(now)
                if topics or now >= deadline:
                    return topics
                due = self._throttle.wait_time(now)
                self._ready.wait(min(deadline - now, due if due is not None else math.inf))


def poll_interval(db: Any) -> float:
    """Seconds between looks at the store when nothing wakes the hub sooner."""
    return POLL_INTERVAL if has_change_feed(db) else SQLITE_POLL_INTERVAL


class LiveHub:
    """Per-process: while any socket is subscribed, reads the store's change markers when the change feed says
    a batch committed (PostgreSQL) or at each poll, and fans out the topics that changed."""

    def __init__(self, db: Any, max_sockets: int, *, interval: float | None = None,
                 listening_interval: float = LISTENING_POLL_INTERVAL, send_interval: float = SEND_INTERVAL,
                 read: Callable[[Any], Snapshot] = read_snapshot, listen: bool = True) -> None:
        self.db = db
        self.max_sockets = max_sockets
        self.interval = interval if interval is not None else poll_interval(db)
        self.listening_interval = listening_interval
        self.send_interval = send_interval
        self._read = read
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._listener = Listener.for_database(db, self._on_change, self._wanted) if listen else None

    @property
    def listening(self) -> bool:
        """True while the change feed is up: the hub then hears of each commit, not only at its polls."""
        return self._listener is not None and self._listener.listening.is_set()

    @property
    def socket_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def subscribe(self, baseline: Snapshot | None = None) -> Subscription | None:
        """A new mailbox (told first what changed since `baseline`), or None when this process already serves
        `max_sockets` sockets."""
        with self._lock:
            if len(self._subscribers) >= self.max_sockets:
                return None
            subscription = Subscription(interval=self.send_interval, baseline=baseline)
            self._subscribers.add(subscription)
            if self._thread is None:  # started lazily: after gunicorn's fork, in the process that serves
                self._thread = threading.Thread(target=self._run, name="webui-live-hub", daemon=True)
                self._thread.start()
                if self._listener is not None:
                    self._listener.start()
        self._wake.set()
        if self._listener is not None:
            self._listener.resume()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._listener is not None:
            self._listener.stop()

    def _wanted(self) -> bool:
        return not self._stopped.is_set() and self.socket_count > 0

    def _on_change(self, _payload: str | None) -> None:
        # The payload only hints at the topics: the snapshot decides, as it does after a poll.
        self._wake.set()

    def _run(self) -> None:
        previous: Snapshot | None = None
        while not self._stopped.is_set():
            if not self.socket_count:
                self._release_connection()
                previous = None  # a snapshot from before the idle spell would report stale changes
                self._wake.wait()
                self._wake.clear()
                continue
            current = self._poll()
            if current is not None:
                topics = changed_topics(previous, current) if previous is not None else set()
                self._fan_out(topics, current)
                previous = current
            # Woken early by a commit (the change feed), a new socket or stop(); commits that arrive while the
            # snapshot is read set the event again, so none is missed and a burst costs one look.
            self._wake.wait(self.listening_interval if self.listening else self.interval)
            self._wake.clear()
        self._release_connection()

    def _poll(self) -> Snapshot | None:
        try:
            self.db.connect(reuse_if_open=True)
            snapshot = self._read(self.db)
        except Exception as exc:  # noqa: BLE001 - the database may be away for a while; keep trying
            if not self._failing:
                log.warning("live updates paused: cannot read the store's change markers: %s", exc)
            self._failing = True
            self._release_connection()
            return None
        if self._failing:
            log.info("live updates resumed")
            self._failing = False
        return snapshot

    def _fan_out(self, topics: set[str], current: Snapshot) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.catch_up(current)  # a new socket: what changed since its page was rendered
            if topics:
                subscription.offer(topics)

    def _release_connection(self) -> None:
        try:
            if not self.db.is_closed():
                self.db.close()
        except Exception:  # noqa: BLE001 - a broken connection is being dropped anyway
            log.debug("closing the live hub's connection failed", exc_info=True)
