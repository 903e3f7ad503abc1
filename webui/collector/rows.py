"""SQL for the writer's hot path: load task states, write tasks, events and workers in bulk.

Plain prepared statements with `executemany` inside the writer's transaction: per-row ORM objects would cost
more than the merge itself at tens of thousands of events per second. Only the leading collector's writer
thread calls these (one writer per database), which is what makes writer-assigned task ids safe.
"""
from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import fields
from operator import attrgetter
from typing import Any

from peewee import Database

from webui import fastjson
from webui.collector import inspector
from webui.collector.merge import EventRecord, TaskState
from webui.collector.rollups import VALUE_COLUMNS as ROLLUP_COLUMNS
from webui.collector.workers import Transition, WorkerState
from webui.store.database import is_sqlite

TASK_COLUMNS = tuple(f.name for f in fields(TaskState))
_TASK_DATA_COLUMNS = tuple(c for c in TASK_COLUMNS if c not in ("id", "uuid"))
# `worker.forgotten_at` is deliberately not here: the web process sets it, and rewriting a worker from the
# writer's in-memory image leaves it alone; only a new event (a later `last_seen`) brings a forgotten worker back.
WORKER_COLUMNS = tuple(f.name for f in fields(WorkerState) if f.name not in ("id", "processed_baseline"))
EVENT_COLUMNS = EventRecord._fields
QUEUE_SAMPLE_COLUMNS = ("queue", "depth", "ready", "unacked", "consumers", "oldest_age", "detail")
_LOAD_CHUNK = 500


class TaskCache:
    """Recently touched task states by uuid, so most merges need no read (bounded: memory stays flat).

    A state whose last event arrived more than `max_age` seconds ago is read again from the database instead:
    retention (webui.store.retention) may have deleted its row since, and a late event must then make a new
    row rather than update one that is gone. Finished tasks are kept at least a day, so an hour is safe.
    """

    def __init__(self, capacity: int = 20_000, max_age: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.capacity = capacity
        self.max_age = max_age
        self.clock = clock
        self._states: OrderedDict[str, TaskState] = OrderedDict()

    def get(self, uuid: str) -> TaskState | None:
        state = self._states.get(uuid)
        if state is None:
            return None
        if state.updated_at is not None and state.updated_at < self.clock() - self.max_age:
            del self._states[uuid]
            return None
        self._states.move_to_end(uuid)
        return state

    def put(self, state: TaskState) -> None:
        self._states[state.uuid] = state
        self._states.move_to_end(state.uuid)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)

    def forget(self, uuids: Iterable[str]) -> None:
        for uuid in uuids:
            self._states.pop(uuid, None)

    def clear(self) -> None:
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)


class Rows:
    """Statements bound to one database; `p` is its parameter placeholder."""

    def __init__(self, db: Database) -> None:
        self.db = db
        p = db.param
        self._select_tasks = f"SELECT {', '.join(TASK_COLUMNS)} FROM task WHERE uuid IN ({{}})"
        self._insert_task = (f"INSERT INTO task ({', '.join(TASK_COLUMNS)}) "
                             f"VALUES ({', '.join([p] * len(TASK_COLUMNS))})")
        self._update_task = (f"UPDATE task SET {', '.join(f'{c} = {p}' for c in _TASK_DATA_COLUMNS)} "
                             f"WHERE id = {p}")
        self._insert_event = (f"INSERT INTO task_event ({', '.join(EVENT_COLUMNS)}) "
                              f"VALUES ({', '.join([p] * len(EVENT_COLUMNS))})")
        self._insert_worker = (f"INSERT INTO worker ({', '.join(WORKER_COLUMNS)}) "
                               f"VALUES ({', '.join([p] * len(WORKER_COLUMNS))})")
        self._update_worker = (f"UPDATE worker SET {', '.join(f'{c} = {p}' for c in WORKER_COLUMNS)} "
                               f"WHERE id = {p}")
        self._insert_transition = (f"INSERT INTO worker_event (worker_id, online, at, reason) "
                                   f"VALUES ({p}, {p}, {p}, {p})")
        # Additive upsert (SQLite >= 3.24 and PostgreSQL): a minute's row grows with every batch that has events in it.
        self._upsert_rollup = (
            f"INSERT INTO task_minute (minute, name, {', '.join(ROLLUP_COLUMNS)}) "
            f"VALUES ({', '.join([p] * (len(ROLLUP_COLUMNS) + 2))}) ON CONFLICT (minute, name) DO UPDATE SET "
            + ", ".join(f"{c} = task_minute.{c} + excluded.{c}" for c in ROLLUP_COLUMNS))

    # -- tasks -----------------------------------------------------------------------------------------
    def next_task_id(self) -> int:
        row = self.db.execute_sql("SELECT MAX(id) FROM task").fetchone()
        return (row[0] or 0) + 1

    def load_tasks(self, uuids: list[str]) -> dict[str, TaskState]:
        found: dict[str, TaskState] = {}
        for start in range(0, len(uuids), _LOAD_CHUNK):
            for row in self._select_by_uuid(uuids[start:start + _LOAD_CHUNK]):
                state = TaskState(**dict(zip(TASK_COLUMNS, row, strict=True)))
                state.detail = json.loads(state.detail) if state.detail else {}  # type: ignore[arg-type]
                found[state.uuid] = state
        return found

    def _select_by_uuid(self, chunk: list[str]) -> list[tuple[Any, ...]]:
        if is_sqlite(self.db):
            sql = self._select_tasks.format(", ".join(["?"] * len(chunk)))
            return self.db.execute_sql(sql, chunk).fetchall()
        # psycopg prepares a statement after 5 runs and PostgreSQL then reuses a generic plan, made when the
        # table was tiny: a sequential scan, kept as the table grew (measured: ingest fell to 4,000 events/s).
        # One array parameter and no preparation: each lookup is planned for the table as it is.
        with self.db.cursor() as cursor:
            cursor.execute(self._select_tasks.format("SELECT unnest(%s::text[])"), (chunk,), prepare=False)
            return cursor.fetchall()

    def write_tasks(self, new: list[TaskState], changed: list[TaskState]) -> None:
        if new:
            self._insert_rows("task", TASK_COLUMNS, self._insert_task, [_task_values(t, TASK_COLUMNS) for t in new])
        if changed:
            self.db.cursor().executemany(self._update_task,
                                         [(*_task_values(t, _TASK_DATA_COLUMNS), t.id) for t in changed])

    def write_events(self, records: list[EventRecord]) -> None:
        if records:
            self._insert_rows("task_event", EVENT_COLUMNS, self._insert_event, records)

    def stored_event_keys(self, uuids: list[str]) -> set[tuple[Any, ...]]:
        """(uuid, type, timestamp, hostname, clock) of the stream events and companion records stored for these
        tasks: what a redelivered message may repeat (webui.collector.redelivery)."""
        keys: set[tuple[Any, ...]] = set()
        p = self.db.param
        for start in range(0, len(uuids), _LOAD_CHUNK):
            chunk = uuids[start:start + _LOAD_CHUNK]
            sql = ("SELECT t.uuid, e.type, e.timestamp, e.hostname, e.clock FROM task_event e JOIN task t "
                   "ON t.id = e.task_id WHERE (e.source IS NULL OR e.source = 'agent') "
                   f"AND t.uuid IN ({', '.join([p] * len(chunk))})")
            keys.update(tuple(row) for row in self.db.execute_sql(sql, chunk).fetchall())
        return keys

    def _insert_rows(self, table: str, columns: tuple[str, ...], insert: str, rows: list[Any]) -> None:
        """Rows known to be new (the single writer checked): executemany, or COPY on PostgreSQL.

        PostgreSQL pays its per-statement overhead for every executemany row: measured, it capped ingest
        near 5,000 events/s with the server's backend at 100% CPU. COPY sends the rows as one stream.
        """
        if is_sqlite(self.db):
            self.db.cursor().executemany(insert, rows)
            return
        with self.db.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def write_rollups(self, rollups: dict[tuple[int, str], list[float]]) -> None:
        """Add one batch's per-minute counts (webui.collector.rollups.accumulate) to `task_minute`."""
        if rollups:
            self.db.cursor().executemany(self._upsert_rollup, [(*key, *values) for key, values in rollups.items()])

    # -- workers ---------------------------------------------------------------------------------------
    def load_workers(self) -> dict[str, WorkerState]:
        columns = ("id", *WORKER_COLUMNS)
        cursor = self.db.execute_sql(f"SELECT {', '.join(columns)} FROM worker")
        workers = {}
        for row in cursor.fetchall():
            values = dict(zip(columns, row, strict=True))
            values["online"] = bool(values["online"])
            workers[values["hostname"]] = WorkerState(**values)
        return workers

    def write_workers(self, workers: Iterable[WorkerState], transitions: list[Transition],
                      by_host: dict[str, WorkerState]) -> None:
        cursor = self.db.cursor()
        updates = []
        for worker in workers:
            values = tuple(getattr(worker, c) for c in WORKER_COLUMNS)
            if worker.id is None:
                worker.id = self._insert_returning_id(self._insert_worker, values)
            else:
                updates.append((*values, worker.id))
        if updates:
            cursor.executemany(self._update_worker, updates)
        if transitions:
            cursor.executemany(self._insert_transition, [
                (by_host[t.hostname].id, t.online, t.at, t.reason) for t in transitions])

    def _insert_returning_id(self, sql: str, values: tuple[Any, ...]) -> int:
        cursor = self.db.execute_sql(sql + " RETURNING id", values)
        return int(cursor.fetchone()[0])

    # -- inspection ------------------------------------------------------------------------------------
    def write_inspection(self, results: dict[str, dict[str, Any]], at: float) -> None:
        """Merge each answering worker's replies into its row; workers that did not answer keep theirs."""
        p = self.db.param
        for hostname, fresh in results.items():
            row = self.db.execute_sql(f"SELECT data FROM worker_inspection WHERE hostname = {p}",
                                      (hostname,)).fetchone()
            previous = _loads_object(row[0]) if row else None
            data, error = inspector.merge(previous, fresh)
            values = (at, fastjson.dumps(data), error, hostname)
            if row:
                self.db.execute_sql(
                    f"UPDATE worker_inspection SET at = {p}, data = {p}, error = {p} WHERE hostname = {p}", values)
            else:
                self.db.execute_sql(
                    f"INSERT INTO worker_inspection (at, data, error, hostname) VALUES ({p}, {p}, {p}, {p})", values)

    # -- queue samples (webui.collector.queue_sampler) ------------------------------------------------
    def write_queue_samples(self, samples: list[dict[str, Any]], at: float, keep_after: float) -> None:
        """One row per sampled queue; then delete the oldest rows sampled before `keep_after`, a batch at a time.

        Only the oldest ids are looked at (ids grow with time), so the delete costs the same whether or not
        anything has expired, and each call removes more than it adds: the history stays bounded.
        """
        p = self.db.param
        columns = QUEUE_SAMPLE_COLUMNS
        if samples:
            self.db.cursor().executemany(
                f"INSERT INTO queue_sample (at, {', '.join(columns)}) VALUES ({p}, {', '.join([p] * len(columns))})",
                [(at, *(s.get(c) for c in columns)) for s in samples])
        batch = max(500, 2 * len(samples))
        self.db.execute_sql(
            f"DELETE FROM queue_sample WHERE at < {p} AND id IN "
            f"(SELECT id FROM queue_sample ORDER BY id LIMIT {batch})", (keep_after,))

    # -- gaps and status -------------------------------------------------------------------------------
    def open_gap(self, started_at: float, kind: str, reason: str) -> int:
        p = self.db.param
        return self._insert_returning_id(
            f"INSERT INTO collector_gap (started_at, kind, reason) VALUES ({p}, {p}, {p})",
            (started_at, kind, reason))

    def close_gap(self, gap_id: int, ended_at: float, events_lost: int | None = None) -> None:
        p = self.db.param
        self.db.execute_sql(
            f"UPDATE collector_gap SET ended_at = {p}, events_lost = COALESCE({p}, events_lost) WHERE id = {p}",
            (ended_at, events_lost, gap_id))

    def open_gaps(self) -> list[tuple[int, str]]:
        return list(self.db.execute_sql("SELECT id, kind FROM collector_gap WHERE ended_at IS NULL").fetchall())

    def last_heartbeat(self) -> float | None:
        row = self.db.execute_sql("SELECT heartbeat_at FROM collector_status WHERE id = 1").fetchone()
        return row[0] if row else None

    def write_status(self, values: dict[str, Any]) -> None:
        p = self.db.param
        columns = list(values)
        updated = self.db.execute_sql(
            f"UPDATE collector_status SET {', '.join(f'{c} = {p}' for c in columns)} WHERE id = 1",
            [values[c] for c in columns]).rowcount
        if not updated:
            self.db.execute_sql(
                f"INSERT INTO collector_status (id, {', '.join(columns)}) "
                f"VALUES (1, {', '.join([p] * len(columns))})", [values[c] for c in columns])


_GETTERS = {columns: (attrgetter(*columns), columns.index("detail"))
            for columns in (TASK_COLUMNS, _TASK_DATA_COLUMNS)}


def _loads_object(text: str | None) -> dict[str, Any] | None:
    try:
        value = fastjson.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _task_values(task: TaskState, columns: tuple[str, ...]) -> tuple[Any, ...]:
    getter, detail_at = _GETTERS[columns]
    values = getter(task)
    detail = values[detail_at]
    encoded = fastjson.dumps(detail) if detail else None
    return (*values[:detail_at], encoded, *values[detail_at + 1:])
