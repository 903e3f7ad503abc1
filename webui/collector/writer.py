"""The writer thread: the only code that writes events to the database.

The subscriber hands over decoded messages with `put_events` (an append to a deque: it never waits on the
database, so Redis never disconnects it as a slow subscriber). The writer wakes every `batch_interval` seconds
(or sooner when `batch_size` events are waiting), then for the whole batch: validates and sanitizes each event,
merges it into its task's state (webui.collector.merge), and writes tasks, events, workers, gaps and its own
status in ONE transaction. So the interval bounds what a SIGKILL can lose: events not yet committed, at most
`batch_interval` seconds plus the time one commit takes.

If a commit fails (database locked, PostgreSQL restarting) the same batch is merged again from the raw events
and retried with backoff, while the subscriber keeps buffering; nothing is dropped unless the buffer reaches
`max_buffered_events`, and then the loss is counted and recorded as a gap.
"""
from __future__ import annotations

import collections
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from peewee import Database, DataError, IntegrityError

from webui.beat import beat_rows
from webui.collector import merge, redelivery, rollups, sources, task_logs, workers
from webui.collector.decode import MalformedEvent, normalise
from webui.collector.leader import STANDBY_POLL, LeaderLock, NoLock
from webui.collector.rows import Rows, TaskCache
from webui.privacy import Redactor
from webui.store import change_feed
from webui.store.database import discard_connection, reopen_connection, use_writer_cache
from webui.store.task_search import Indexer, Snapshot

log = logging.getLogger(__name__)

GAP_COLLECTOR_DOWN = "collector-down"
GAP_BROKER = "broker-disconnected"
GAP_OVERFLOW = "buffer-overflow"
# About 1 KB of memory per buffered event: a bound of ~1 GB, or 30 s of a 30,000 events/s stream while the
# database is unavailable. Past it events are dropped, counted, and recorded as a gap.
MAX_BUFFERED_EVENTS = 1_000_000
STOP_ATTEMPTS = 3  # commits tried once a stop was asked for, before giving up on an unavailable database
INDEX_PACE = 2.0  # seconds: the search indexer takes a step at least this often, however busy the writer is


@dataclass
class CollectorStats:
    """Counters and connection state shared by the collector's threads; the writer persists them."""

    leader: str = ""
    broker: str = ""
    started_at: float = field(default_factory=time.time)
    connected: bool = False
    connected_since: float | None = None
    last_event_at: float | None = None
    last_task_event_at: float | None = None
    events_total: int = 0
    events_malformed: int = 0  # counted by the writer
    messages_malformed: int = 0  # counted by the subscriber (undecodable messages)
    events_dropped: int = 0
    last_error: str | None = None
    warning: str | None = None
    last_commit_at: float | None = None
    commit_error: str | None = None


@dataclass
class _Batch:
    items: list[tuple[str, Any, float]]
    events: int


class LostLeadership(RuntimeError):
    """Another collector holds the lock now: this one must stop writing."""


class Writer(threading.Thread):
    """Waits for the leader lock, then writes batches until stopped (see the module docstring)."""

    def __init__(self, db: Database, redactor: Redactor, stats: CollectorStats, *,
                 lock: LeaderLock | None = None,
                 batch_interval: float = 0.25, batch_size: int = 5000, offline_heartbeats: float = 3.0,
                 no_task_events_warning: float = 60.0, max_buffered_events: int = MAX_BUFFERED_EVENTS,
                 pair_sources: bool = False, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name="webui-writer", daemon=True)
        self.db = db
        self.lock = lock or NoLock()
        self.rows = Rows(db)
        self.redactor = redactor
        self.stats = stats
        self.batch_interval = batch_interval
        self.batch_size = batch_size
        self.offline_heartbeats = offline_heartbeats
        self.no_task_events_warning = no_task_events_warning
        self.max_buffered_events = max_buffered_events
        # Reading the companion's stream too: a transition may come as an event and as a record (sources.py).
        self.pair_sources = pair_sources
        self.clock = clock
        self._inbox: collections.deque[tuple[str, Any, float]] = collections.deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._enqueued = 0  # written by producers only
        self._dequeued = 0  # written by this thread only
        self._cache = TaskCache(clock=clock)
        self._workers: dict[str, workers.WorkerState] = {}
        self._next_id = 1
        self._open_gaps: dict[str, int] = {}
        self._overflowing = False
        self._overflow_dropped = 0  # producer side: events dropped in the current overflow
        # Set while the durable event queue's backlog is read (webui.collector.service): silence then means
        # "not read yet", so the heartbeat sweep must not take workers offline.
        self.sweeps_paused = False
        self._malformed_logged_at = 0.0
        self.leading = threading.Event()
        self.previous_heartbeat: float | None = None
        self.failed: BaseException | None = None
        self.search = Indexer(db)  # the search index's steps run in this thread (webui.store.task_search)
        self._search_before: Snapshot = {}
        self._indexed_at = 0.0
        self._index_error_logged_at = 0.0
        self._announced_status: tuple[Any, ...] | None = None

    # -- producers (any thread) --------------------------------------------------------------------------
    def dropped_upstream(self, count: int) -> None:
        """Events the reader process had to drop: counted and shown as a gap like our own overflow."""
        self.stats.events_dropped += count
        self._control("gap-open", (GAP_OVERFLOW, "the collector fell behind and the event reader's buffer was "
                                   "full: events were dropped"))
        self._control("gap-close", (GAP_OVERFLOW, count))

    def put_events(self, raw_events: list[Any], received: float, prepared: bool = False, *,
                   redelivered: bool = False, receipt: Callable[[], None] | None = None) -> None:
        """Hand over the events of one message. Never blocks; drops (counted) only past the buffer bound.

        `prepared`: the reader process already validated and masked them (normalise + privacy filter).
        `redelivered`: the broker delivered the message before; events already stored are skipped
        (webui.collector.redelivery). `receipt`: called once the batch holding these events is committed (the
        durable event queue then acknowledges the message).
        """
        if self.pending() >= self.max_buffered_events:
            self.stats.events_dropped += len(raw_events)
            self._overflow_dropped += len(raw_events)
            if not self._overflowing:
                self._overflowing = True
                self._control("gap-open", (GAP_OVERFLOW, "the writer fell behind and the event buffer was "
                                           f"full ({self.max_buffered_events} events): events were dropped"))
            return
        if self._overflowing:
            self._overflowing = False
            self._control("gap-close", (GAP_OVERFLOW, self._overflow_dropped))
            self._overflow_dropped = 0
        kind = redelivery.REDELIVERED if redelivered else "prepared" if prepared else "events"
        self._inbox.append((kind, raw_events, received))
        self._enqueued += len(raw_events)
        if receipt is not None:
            self._inbox.append(("receipt", receipt, received))
        if self.pending() >= self.batch_size and not self._wake.is_set():  # set() takes a lock: only once
            self._wake.set()

    def put_repairs(self, events: list[dict[str, Any]], source: str) -> None:
        """Synthetic task events from inspect or the result backend; merged by the same rules."""
        self._inbox.append(("repair", (events, source), self.clock()))
        self._wake.set()

    def put_inspection(self, results: dict[str, dict[str, Any]], at: float) -> None:
        """The workers' inspect replies (`{hostname: {command: reply}}`, already cleaned by the inspector)."""
        self._inbox.append(("inspection", results, at))
        self._wake.set()

    def put_queue_samples(self, samples: list[dict[str, Any]], at: float, keep_after: float) -> None:
        """One depth sample per queue (webui.collector.queue_sampler); older than `keep_after` is deleted."""
        self._inbox.append(("queue-samples", (samples, keep_after), at))
        self._wake.set()

    def put_beat_pass(self, found: Any) -> None:
        """One beat watcher pass: schedule entries, new fires, ping answers (webui.beat.watcher)."""
        self._inbox.append(("beat", found, found.at))
        self._wake.set()

    def open_gap(self, kind: str, reason: str, started_at: float | None = None) -> None:
        self._control("gap-open", (kind, reason), started_at)

    def close_gap(self, kind: str, ended_at: float | None = None, lost: int | None = None) -> None:
        self._control("gap-close", (kind,) if lost is None else (kind, lost), ended_at)

    def _control(self, op: str, args: tuple[Any, ...], at: float | None = None) -> None:
        self._inbox.append((op, args, at if at is not None else self.clock()))
        self._wake.set()

    def pending(self) -> int:
        return self._enqueued - self._dequeued

    def commit_soon(self) -> None:
        """Commit what is waiting without waiting out the batch interval: the durable event queue's subscriber
        asks once half its prefetch window waits for a commit, since the broker sends no more until then."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is buffered, then stop."""
        self._stopping.set()
        self._wake.set()
        self.join(timeout)

    # -- the thread ------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            with self.db.connection_context():
                use_writer_cache(self.db)
                if not self._wait_for_leadership():
                    return
                try:
                    self._start()
                    self.leading.set()
                    self._loop()
                finally:
                    self.lock.release()
        except BaseException as exc:  # noqa: BLE001 - reported to the service, which resigns leadership
            self.failed = exc
            if not isinstance(exc, LostLeadership):
                log.exception("collector writer stopped")

    def _wait_for_leadership(self) -> bool:
        while not self._stopping.is_set():
            if self.lock.acquire():
                return True
            self._stopping.wait(STANDBY_POLL)
        return False

    def _start(self) -> None:
        self.previous_heartbeat = self.rows.last_heartbeat()
        self._workers = self.rows.load_workers()
        self._next_id = self.rows.next_task_id()
        self._open_gaps = {kind: gap_id for gap_id, kind in self.rows.open_gaps()}
        self.search.start()

    def _loop(self) -> None:
        next_tick = 0.0
        while True:
            drained_at = time.monotonic()
            stopping = self._stopping.is_set()
            batch = self._drain()
            now = self.clock()
            if batch.items or now >= next_tick or stopping:
                self._commit_with_retry(batch, tick=now >= next_tick or stopping)
                if now >= next_tick:
                    next_tick = now + 1.0
            if stopping and not self._inbox:
                return
            if not stopping:
                self._index()
            if not self._inbox or self.pending() < self.batch_size:
                # One interval from this drain, not from the end of its commit: under load an event then waits
                # about one interval for its commit, not an interval plus a commit.
                self._wake.wait(max(0.0, drained_at + self.batch_interval - time.monotonic()))
                self._wake.clear()

    def _drain(self) -> _Batch:
        items, events = [], 0
        while self._inbox and events < self.batch_size:
            item = self._inbox.popleft()
            items.append(item)
            if item[0] in ("events", "prepared", redelivery.REDELIVERED):
                events += len(item[1])
        return _Batch(items, events)

    def _index(self) -> None:
        """Search indexing, at low priority: steps while less than half a batch is waiting (for at most half a
        batch interval once anything is), and one step every INDEX_PACE seconds whatever the backlog, so it
        always catches up. Steps are smaller while events wait (webui.store.task_search.STEP_ROWS)."""
        search = self.search
        if not search.enabled:
            return
        began = time.monotonic()
        forced = began - self._indexed_at >= INDEX_PACE
        if search.caught_up and not forced:
            return
        while forced or self.pending() < self.batch_size // 2:
            forced = False
            try:
                handled = search.step(busy=bool(self._inbox))
            except Exception as exc:  # noqa: BLE001 - indexing must never stop ingest; the next step retries
                if began - self._index_error_logged_at >= 60:
                    self._index_error_logged_at = began
                    log.warning("search indexing failed (%s); retrying", exc)
                handled = 0
            self._indexed_at = time.monotonic()
            if not handled or self._stopping.is_set():
                return
            if self._inbox and self._indexed_at - began >= self.batch_interval / 2:
                return

    def _commit_with_retry(self, batch: _Batch, tick: bool) -> None:
        delay = 0.1
        failures_while_stopping = 0
        while True:
            try:
                self._commit(batch, tick)
                self._dequeued += batch.events
                self.stats.commit_error = None
                for kind, receipt, _at in batch.items:
                    if kind == "receipt":
                        receipt()
                return
            except LostLeadership:
                raise
            except Exception as exc:  # noqa: BLE001 - any database error: retry, never drop the batch
                self._forget_unsaved(batch)
                if isinstance(exc, _DATA_ERRORS) and batch.items:
                    # The batch itself cannot be written (a value the database refuses): retrying it would
                    # wedge the writer for good. Write it in halves until the culprit is alone; drop only that.
                    self._commit_in_parts(batch, tick, exc)
                    return
                self.stats.commit_error = _describe(exc)
                if self._stopping.is_set():
                    failures_while_stopping += 1
                    if failures_while_stopping >= STOP_ATTEMPTS:
                        # Shutting down and the database still refuses: say exactly what is lost, then go.
                        log.error("stopping with the database unavailable (%s): %d buffered events not written",
                                  self.stats.commit_error, self.pending())
                        raise
                log.warning("database write failed (%s); retrying in %.1fs", self.stats.commit_error, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._reconnect()

    def _commit_in_parts(self, batch: _Batch, tick: bool, exc: Exception) -> None:
        parts = _halves(batch)
        if parts is None:
            self.stats.events_malformed += max(batch.events, 1)  # shown and exported as refused events
            self._dequeued += batch.events
            kind, payload, _at = batch.items[0]
            log.error("dropped %s the database refuses (%s: %s): %s", "an event" if batch.events else kind,
                      type(exc).__name__, exc, _preview(payload))
            return
        for number, part in enumerate(parts):
            self._commit_with_retry(part, tick and number == 0)

    def _reconnect(self) -> None:
        discard_connection(self.db)  # even one left inside a transaction that could not be rolled back
        try:
            reopen_connection(self.db)
            use_writer_cache(self.db)
        except Exception as exc:  # noqa: BLE001
            log.debug("database reconnect failed: %s", exc)
            return
        # A new connection holds no advisory lock: win it back before writing, or step down.
        if not self.lock.holds() and not self.lock.acquire():
            raise LostLeadership("another collector took over while the database connection was down")

    def _forget_unsaved(self, batch: _Batch) -> None:
        """After a rollback the in-memory images are ahead of the database: reload them next time."""
        self._cache.clear()
        try:
            self._workers = self.rows.load_workers()
        except Exception:  # noqa: BLE001 - retried on the next attempt
            self._workers = {}

    # -- one transaction -------------------------------------------------------------------------------
    def _commit(self, batch: _Batch, tick: bool) -> None:
        if any(item[0] == redelivery.REDELIVERED for item in batch.items):
            batch = self._without_stored_copies(batch)
        task_events, worker_events, malformed = self._sort(batch)
        task_events, logs = task_logs.split(task_events)  # the companion's log lines: stored, not merged
        beat_failures = beat_rows.publish_failures(batch.items)  # the companion in beat: fires that did not go
        beat_stamps = beat_rows.stamped_sends(batch.items)  # …and the stamps of those that did
        controls = [item for item in batch.items if item[0] in ("gap-open", "gap-close")]
        with self.db.atomic():
            touched_workers, transitions = self._merge_workers(worker_events, task_events)
            new, changed, records, task_events = self._merge_tasks(task_events)
            log_rows = self._log_rows(logs, new, changed)
            self.rows.write_tasks(new, changed)
            task_logs.write(self.db, log_rows)
            self.search.queue(self._search_before, changed, new=new)
            self.rows.write_events(records)
            # Per-minute counts for the overview, in the same transaction: they never disagree with the events.
            self.rows.write_rollups(rollups.accumulate(task_events, {s.uuid: s for s in (*new, *changed)}))
            if tick and not self.sweeps_paused:
                transitions += workers.sweep(list(self._workers.values()), self.clock(), self.offline_heartbeats)
                touched_workers.update(t.hostname for t in transitions)
                self._check_task_events_flowing()
            self.rows.write_workers([self._workers[h] for h in touched_workers], transitions, self._workers)
            self._apply_controls(controls)
            for kind, results, at in batch.items:
                if kind == "inspection":
                    self.rows.write_inspection(results, at)
                elif kind == "queue-samples":
                    self.rows.write_queue_samples(results[0], at, keep_after=results[1])
                elif kind == "beat":
                    beat_rows.write_pass(self.db, results)
            if beat_failures:
                beat_rows.write_publish_failures(self.db, beat_failures, self.redactor)
            if beat_stamps:
                beat_rows.fill_stamped_due(self.db, beat_stamps)
            self._count(batch, task_events, malformed)
            if tick or batch.items:
                status = self._status_values()
                self.rows.write_status(status)
            else:
                status = None
            # PostgreSQL delivers this on commit only: every web process's live hub then looks at once.
            topics = _news(records, new, touched_workers, transitions, batch.items, self._status_news(status))
            if log_rows:
                topics.add("tasks")
            if topics:
                change_feed.notify(self.db, topics)
        if status is not None:
            self._announced_status = _announced(status)
        for state in new + changed:
            self._cache.put(state)
        self.stats.last_commit_at = self.clock()
        for t in transitions:
            log.info("worker %s is %s (%s)", t.hostname, "online" if t.online else "offline", t.reason)

    def _without_stored_copies(self, batch: _Batch) -> _Batch:
        """The batch without the events of redelivered messages that are stored already (redelivery.py)."""
        stored = self.rows.stored_event_keys(redelivery.redelivered_uuids(batch.items))
        items, skipped = redelivery.fresh_items(batch.items, stored, self._workers)
        if skipped:
            log.info("skipped %d redelivered events already stored", skipped)
        return _Batch(items, batch.events - skipped)

    def _sort(self, batch: _Batch) -> tuple[list[tuple[dict[str, Any], str | None]], list[dict[str, Any]], int]:
        task_events: list[tuple[dict[str, Any], str | None]] = []
        worker_events: list[dict[str, Any]] = []
        malformed = 0
        redactor = self.redactor

        def clean(event: dict[str, Any]) -> dict[str, Any]:
            return redactor.clean_event(event, copy=False)  # normalise() made this dict; nobody else has it
        for kind, payload, received in batch.items:
            if kind == "prepared":
                for event in payload:
                    etype = event["type"]
                    if etype.startswith("task-"):
                        task_events.append((event, None))
                    elif etype.startswith("worker-"):
                        worker_events.append(event)
                continue
            if kind not in ("events", "repair"):
                continue
            repair = payload[1] if kind == "repair" else None
            for raw in (payload[0] if kind == "repair" else payload):
                # A companion record (webui.agent) says so; its source goes to the event log's column.
                source = repair
                if kind == "events" and isinstance(raw, dict) and raw.get("source") == merge.AGENT_SOURCE:
                    source = merge.AGENT_SOURCE  # left in the dict: a failed commit merges it again
                try:
                    event = normalise(raw, received)
                except MalformedEvent as exc:
                    malformed += 1
                    self._log_malformed(exc)
                    continue
                etype = event["type"]
                if etype.startswith("task-"):
                    task_events.append((clean(event), source))
                elif etype.startswith("worker-"):
                    worker_events.append(event)
        return task_events, worker_events, malformed

    def _merge_tasks(self, task_events: list[tuple[dict[str, Any], str | None]]):
        states = self._load_states({e["uuid"] for e, _ in task_events})
        self._search_before = self.search.before(states.values())  # what the index may hold, before merging
        new_ids: set[str] = set()
        records = []
        merged = []  # the events merged: without the second report of a transition (webui.collector.sources)
        for event, source in task_events:
            uuid = event["uuid"]
            state = states.get(uuid)
            if state is None:
                state = states[uuid] = merge.TaskState(uuid=uuid, id=self._next_id)
                self._next_id += 1
                new_ids.add(uuid)
            if self.pair_sources and sources.is_repeat(state, event, source):
                continue
            merged.append((event, source))
            records.append(merge.apply_task_event(state, event, source))
        new = [states[u] for u in new_ids]
        changed = [s for u, s in states.items() if u not in new_ids]
        return new, changed, records, merged

    def _log_rows(self, logs: list[dict[str, Any]], new: list[merge.TaskState],
                  changed: list[merge.TaskState]) -> list[tuple[Any, ...]]:
        """The rows of the batch's log lines. A line whose task is not known yet (its records still on their
        way) makes the task's row, as any first report of a task does; `new` gets it."""
        if not logs:
            return []
        ids = {state.uuid: state.id for state in (*new, *changed)}
        missing = {event["uuid"] for event in logs} - ids.keys()
        for uuid, state in self._load_states(missing).items() if missing else ():
            ids[uuid] = state.id
        for uuid in missing - ids.keys():
            # PENDING, as merge gives a task first heard of by a custom event; its next transition moves it on.
            state = merge.TaskState(uuid=uuid, id=self._next_id, state=merge.PENDING,
                                    updated_at=logs[0]["local_received"])
            self._next_id += 1
            new.append(state)
            ids[uuid] = state.id
        return task_logs.rows(logs, {uuid: i for uuid, i in ids.items() if i is not None}, self.redactor)

    def _load_states(self, uuids: set[str]) -> dict[str, merge.TaskState]:
        states: dict[str, merge.TaskState] = {}
        missing = []
        for uuid in uuids:
            state = self._cache.get(uuid)
            if state is None:
                missing.append(uuid)
            else:
                states[uuid] = state
        if missing:
            states.update(self.rows.load_tasks(missing))
        return states

    def _merge_workers(self, worker_events, task_events) -> tuple[set[str], list[workers.Transition]]:
        touched: set[str] = set()
        transitions: list[workers.Transition] = []
        for event in worker_events:
            worker = self._worker(event["hostname"], event["local_received"])
            transition = workers.apply_worker_event(worker, event)
            touched.add(worker.hostname)
            if transition:
                transitions.append(transition)
        for event, source in task_events:
            known = self._workers.get(event.get("hostname") or "")
            if known is not None and source in merge.FIRST_HAND_SOURCES:
                transition = workers.touch_from_task_event(known, event["local_received"])
                touched.add(known.hostname)
                if transition:
                    transitions.append(transition)
        return touched, transitions

    def _worker(self, hostname: str, received: float) -> workers.WorkerState:
        worker = self._workers.get(hostname)
        if worker is None:
            worker = self._workers[hostname] = workers.WorkerState(hostname, received, received)
        return worker

    def _apply_controls(self, controls: list[tuple[str, Any, float]]) -> None:
        for op, args, at in controls:
            kind = args[0]
            if op == "gap-open" and kind not in self._open_gaps:
                self._open_gaps[kind] = self.rows.open_gap(at, kind, args[1])
            elif op == "gap-close" and kind in self._open_gaps:
                lost = args[1] if len(args) > 1 else None  # events dropped while it was open, when known
                self.rows.close_gap(self._open_gaps.pop(kind), at, lost)

    def _count(self, batch: _Batch, task_events: list, malformed: int) -> None:
        stats = self.stats
        stats.events_total += batch.events
        stats.events_malformed += malformed
        if batch.events:
            stats.last_event_at = batch.items[-1][2]
        if any(source in merge.FIRST_HAND_SOURCES for _, source in task_events):
            stats.last_task_event_at = self.clock()

    def _check_task_events_flowing(self) -> None:
        silent = workers.silent_task_event_workers(
            [w for w in self._workers.values()], self.clock(), self.no_task_events_warning)
        warning = None
        if silent:
            names = ", ".join(f"{host} ({n} tasks)" for host, n in silent[:5])
            warning = (f"No task events from workers that are running tasks: {names}. Start workers with -E "
                       "(worker_send_task_events=True), or keep enable_events on so the monitor turns them on.")
        if warning != self.stats.warning:
            if warning:
                log.warning(warning)
            self.stats.warning = warning

    def _status_values(self) -> dict[str, Any]:
        s = self.stats
        return {
            "leader": s.leader, "broker": s.broker, "connected": s.connected, "started_at": s.started_at,
            "connected_since": s.connected_since, "heartbeat_at": self.clock(),
            "last_event_at": s.last_event_at, "last_task_event_at": s.last_task_event_at,
            "events_total": s.events_total, "events_malformed": s.events_malformed + s.messages_malformed,
            "events_dropped": s.events_dropped, "last_error": s.last_error, "warning": s.warning,
        }

    def _status_news(self, status: dict[str, Any] | None) -> bool:
        """Whether the status row now says something pages show (not just a newer heartbeat or counters)."""
        return status is not None and _announced(status) != self._announced_status

    def _log_malformed(self, exc: MalformedEvent) -> None:
        now = self.clock()
        if now - self._malformed_logged_at >= 10:  # a flood of garbage must not flood the log too
            self._malformed_logged_at = now
            log.warning("malformed event ignored (%s); %d so far", exc, self.stats.events_malformed + 1)


# Errors that come from what a batch holds rather than from the database's health (those are retried):
# constraints, values of the wrong kind, numbers and text the driver cannot convert. Not TypeError or the
# like: a bug of ours would then drop every event instead of holding them until it is fixed.
# The drivers' own classes too: COPY and executemany run on the driver's cursor, which peewee does not wrap.
_DATA_ERRORS = (IntegrityError, DataError, sqlite3.IntegrityError, sqlite3.DataError, psycopg.IntegrityError,
                psycopg.DataError, OverflowError, UnicodeError)


def _halves(batch: _Batch) -> list[_Batch] | None:
    """The batch in two, by items or by the events of its one item; None when it is one event or one item."""
    if len(batch.items) > 1:
        middle = len(batch.items) // 2
        return [_Batch(items, sum(_events_in(i) for i in items))
                for items in (batch.items[:middle], batch.items[middle:])]
    if not batch.items:
        return None
    kind, payload, at = batch.items[0]
    if kind not in ("events", "prepared", "repair", redelivery.REDELIVERED):
        return None
    events = payload[0] if kind == "repair" else payload
    if len(events) < 2:
        return None
    middle = len(events) // 2
    halves = []
    for chunk in (events[:middle], events[middle:]):
        item = (kind, (chunk, payload[1]) if kind == "repair" else chunk, at)
        halves.append(_Batch([item], _events_in(item)))
    return halves


def _describe(exc: BaseException) -> str:
    """The error as people need it: when SQLite already rolled back (a full disk, say), the rollback that
    followed fails with "no transaction is active" and would hide the cause."""
    seen = 0
    while "no transaction is active" in str(exc) and exc.__context__ is not None and seen < 5:
        exc, seen = exc.__context__, seen + 1  # through the driver's and peewee's wrappings of the rollback
    return f"{type(exc).__name__}: {exc}"


def _events_in(item: tuple[str, Any, float]) -> int:
    return len(item[1]) if item[0] in ("events", "prepared", redelivery.REDELIVERED) else 0


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."


_ANNOUNCED_STATUS = ("leader", "connected", "warning", "last_error", "events_dropped")
_ITEM_TOPICS = {"inspection": ("workers",), "queue-samples": ("queues",), "gap-open": ("overview",),
                "gap-close": ("overview",)}


def _announced(status: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(status[name] for name in _ANNOUNCED_STATUS)


def _news(records: list[Any], new: list[Any], touched_workers: set[str], transitions: list[Any],
          items: list[tuple[str, Any, float]], status_news: bool) -> set[str]:
    """The live topics one batch changed (a hint in the NOTIFY payload; the hubs' snapshots decide)."""
    topics: set[str] = set()
    if records or new:
        topics.update(("tasks", "events", "overview"))
    if transitions:
        topics.update(("events", "workers", "overview"))
    if touched_workers:
        topics.add("workers")
    for kind, _payload, _at in items:
        topics.update(_ITEM_TOPICS.get(kind, ()))
    if status_news:
        topics.add("overview")
    return topics
