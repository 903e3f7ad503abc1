"""Read queries of the events page: task events and worker transitions as one stream, newest first.

The stream is ordered by the key (time, kind, id…): a task event's time is `received` (the collector's clock,
indexed by `task_event_received`), a worker transition's is `at` (the same clock). Pages are keyset ranges of
that key, never an OFFSET, so the thousandth page costs what the first does and new rows never shift a page.

A filter on the event type, the task name or the hostname has no index of its own (an index per filter would
cost more bytes per event than the event itself). Filtered task events are read by walking the received index
in chunks, newest first, keeping what matches: a chunk is a range of at most a few thousand index entries, so a
rare or absent value costs a bounded `BUDGET` of queries, never a scan of every event. A page the budget cut
short says where the walk stopped (`EventPage.resume`), and the next request goes on from there.
"""
from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from peewee import JOIN

from webui.store.models import Task, TaskEvent, Worker, WorkerEvent

TASK_EVENT_TYPES = ("task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
                    "task-retried", "task-revoked", "task-rejected", "task-cancelled")
WORKER_EVENT_TYPES = ("worker-online", "worker-offline")
EVENT_TYPES = TASK_EVENT_TYPES + WORKER_EVENT_TYPES

# Among rows of the same time, task events sort above worker transitions.
TASK_RANK, WORKER_RANK = 1, 0
BUDGET = 0.06  # seconds of queries a filtered walk may spend per request before it says where it stopped
CHUNKS = (1000, 4000, 16000)  # task events per step of a filtered walk; the last repeats
_MAX_ID = 2**63 - 1
# peewee adds the implicit `id` primary keys at run time, where mypy cannot see them.
_WORKER_EVENT_ID: Any = WorkerEvent._meta.primary_key
_WORKER_ID: Any = Worker._meta.primary_key
_CURSOR = re.compile(r"^([tw])~(-?[0-9.eE+-]{1,32})~([0-9]{1,19})(?:~([0-9]{1,19}))?$")


class CursorError(ValueError):
    """A cursor that no page of ours wrote."""


@dataclass(frozen=True, order=True)
class Cursor:
    """A row's place in the stream: (time, rank, id, id) compares as the stream sorts."""

    at: float
    rank: int
    first: int
    second: int = 0

    def encode(self) -> str:
        kind = "t" if self.rank == TASK_RANK else "w"
        tail = f"~{self.second}" if self.rank == TASK_RANK else ""
        return f"{kind}~{self.at!r}~{self.first}{tail}"  # repr: the float comes back exactly

    @classmethod
    def decode(cls, text: str) -> Cursor:
        match = _CURSOR.match(text)
        if not match:
            raise CursorError("not a position in the events stream")
        kind, at_text, first, second = match.groups()
        try:
            at = float(at_text)
        except ValueError:
            raise CursorError("its time is not a number") from None
        if not math.isfinite(at) or at < 0:
            raise CursorError("its time is out of range")
        if (kind == "t") != (second is not None):
            raise CursorError("not a position in the events stream")
        numbers = int(first), int(second or 0)
        if max(numbers) > _MAX_ID:
            raise CursorError("its ids are out of range")
        return cls(at, TASK_RANK if kind == "t" else WORKER_RANK, *numbers)


@dataclass(frozen=True)
class EventFilter:
    types: frozenset[str] = frozenset()  # empty: every type
    task_name: str | None = None
    hostname: str | None = None
    since: float | None = None  # epoch seconds, collector clock

    def wants_task_events(self) -> bool:
        return not self.types or bool(self.types & set(TASK_EVENT_TYPES))

    def wants_worker_events(self) -> bool:
        # A transition has no task: it cannot match a task name.
        return self.task_name is None and (not self.types or bool(self.types & set(WORKER_EVENT_TYPES)))


@dataclass
class EventRow:
    cursor: Cursor
    type: str
    hostname: str | None
    task_uuid: str | None = None
    task_name: str | None = None
    data: str | None = None  # JSON text as stored
    source: str | None = None  # a repair ("inspect", "backend"), not the event stream
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def received(self) -> float:
        return self.cursor.at

    @property
    def key(self) -> str:
        return self.cursor.encode()


@dataclass
class EventPage:
    rows: list[EventRow]
    more: bool  # rows beyond this page exist (older for a page, newer than shown for `newer`)
    # Set when the walk's budget ran out before the page was full: rows older than this were not looked at yet,
    # and a page `before` it goes on searching (`more` is then True: there may be more).
    resume: Cursor | None = None


def page(filters: EventFilter, before: Cursor | None = None, limit: int = 50,
         budget: float | None = None) -> EventPage:
    """The newest `limit` rows matching `filters`, older than `before` when given."""
    rows, resume = _merged(filters, before=before, after=None, limit=limit + 1, budget=budget)
    if len(rows) > limit:
        return EventPage(rows[:limit], True)
    return EventPage(rows, resume is not None, resume)


def newer(filters: EventFilter, after: Cursor | None, limit: int = 100, budget: float | None = None) -> EventPage:
    """The newest `limit` rows newer than `after`; `more` says some in between were left out (or, when the
    walk's budget ran out, may have been)."""
    rows, resume = _merged(filters, before=None, after=after, limit=limit + 1, budget=budget)
    return EventPage(rows[:limit], len(rows) > limit or resume is not None)


def count_newer(filters: EventFilter, after: Cursor | None, cap: int = 1000,
                budget: float | None = None) -> tuple[int, bool]:
    """How many rows are newer than `after`, counting no further than `cap`; and whether the count is complete
    (False: the walk's budget ran out first, so "at least")."""
    total, complete = 0, True
    if filters.wants_task_events():
        if _walked(filters):
            counted = [0]

            def take(upper: Cursor | None, floor: float | None) -> bool:
                counted[0] += _task_query(filters, upper, after, floor).limit(cap - counted[0]).count()
                return counted[0] >= cap

            complete = _walk(filters, None, after, take, budget) is None
            total = counted[0]
        else:
            total = _task_query(filters, None, after).limit(cap).count()
    if filters.wants_worker_events() and total < cap:
        total += _worker_query(filters, None, after).limit(cap).count()
    return min(total, cap), complete or total >= cap


def _merged(filters: EventFilter, before: Cursor | None, after: Cursor | None, limit: int,
            budget: float | None) -> tuple[list[EventRow], Cursor | None]:
    """The newest `limit` rows, and where a filtered walk stopped when its budget ran out first (else None)."""
    rows: list[EventRow] = []
    resume = None
    if filters.wants_task_events():
        rows, resume = _task_rows(filters, before, after, limit, budget)
    if filters.wants_worker_events():
        query = _worker_query(filters, before, after).order_by(WorkerEvent.at.desc(), _WORKER_EVENT_ID.desc())
        workers = [_worker_row(r) for r in query.limit(limit).dicts()]
        # Not below where the task events' walk stopped: the next page, from there, shows those.
        rows += [row for row in workers if resume is None or row.cursor > resume]
    rows.sort(key=lambda row: row.cursor, reverse=True)
    if len(rows) >= limit:
        return rows[:limit], None
    return rows, resume


def _walked(filters: EventFilter) -> bool:
    """Whether task events must be walked: a filter the received index cannot serve (a window is a range)."""
    return bool(filters.types) or filters.task_name is not None or filters.hostname is not None


def _task_rows(filters: EventFilter, before: Cursor | None, after: Cursor | None, limit: int,
               budget: float | None) -> tuple[list[EventRow], Cursor | None]:
    order = (TaskEvent.received.desc(), TaskEvent.task_id.desc(), TaskEvent.seq.desc())
    if not _walked(filters):
        return [_task_row(r) for r in _task_query(filters, before, after).order_by(*order).limit(limit).dicts()], None
    rows: list[EventRow] = []

    def take(upper: Cursor | None, floor: float | None) -> bool:
        query = _task_query(filters, upper, after, floor).order_by(*order).limit(limit - len(rows))
        rows.extend(_task_row(r) for r in query.dicts())
        return len(rows) >= limit

    return rows, _walk(filters, before, after, take, budget)


def _walk(filters: EventFilter, before: Cursor | None, after: Cursor | None,
          take: Callable[[Cursor | None, float | None], bool], budget: float | None,
          clock: Callable[[], float] = time.monotonic) -> Cursor | None:
    """Call `take(upper, floor)` on successive chunks of the stream, newest first, until it returns True or the
    range ends (then None), or the budget is spent: then the cursor below which nothing was looked at.

    A chunk holds the task events below `upper` (None: the newest) received at `floor` or later (None: down to
    the end of the range); its floor is the received time of its `size`-th index entry, so every event at that
    time is in it and the next chunk starts strictly below.
    """
    budget = BUDGET if budget is None else budget
    started = clock()
    upper = before
    per_row = 0.0  # seconds a row of the stream costs, measured on the chunks so far
    for size in itertools.chain(CHUNKS, itertools.repeat(CHUNKS[-1])):
        if per_row > 0:  # no chunk may overrun what is left of the budget by much
            size = max(CHUNKS[0], min(size, int((budget - (clock() - started)) / per_row)))
        chunk_started = clock()
        floor = _chunk_floor(filters, upper, after, size)
        if take(upper, floor) or floor is None:
            return None
        upper = Cursor(floor, TASK_RANK, 0, 0)  # "before (floor, …, 0, 0)": received < floor
        now = clock()
        per_row = max(per_row, (now - chunk_started) / size)
        if now - started + per_row * CHUNKS[0] >= budget:
            return upper
    raise AssertionError("unreachable")


def _chunk_floor(filters: EventFilter, upper: Cursor | None, after: Cursor | None, size: int) -> float | None:
    """The received time of the `size`-th task event at or below `upper`, newest first, within the range;
    None when fewer remain. Read from the received index alone."""
    query = TaskEvent.select(TaskEvent.received)
    if upper is not None:
        query = query.where(TaskEvent.received <= upper.at)
    if after is not None:
        query = query.where(TaskEvent.received >= after.at)
    if filters.since is not None:
        query = query.where(TaskEvent.received >= filters.since)
    row = query.order_by(TaskEvent.received.desc()).limit(1).offset(size - 1).tuples().first()
    return None if row is None else float(row[0])


def _task_query(filters: EventFilter, before: Cursor | None, after: Cursor | None,
                floor: float | None = None) -> Any:
    query = TaskEvent.select(TaskEvent.task_id, TaskEvent.seq, TaskEvent.type, TaskEvent.received,
                             TaskEvent.hostname, TaskEvent.timestamp, TaskEvent.pid, TaskEvent.source,
                             TaskEvent.data, Task.uuid.alias("task_uuid"), Task.name.alias("task_name"))
    if _walked(filters):
        # Events first, then each one's task by its key: SQLite (no statistics) would otherwise start from the
        # tasks of the name and sort all their events. CROSS JOIN fixes its join order; PostgreSQL reorders.
        query = query.join(Task, JOIN.CROSS).where(Task.id == TaskEvent.task_id)
    else:
        query = query.join(Task, on=(Task.id == TaskEvent.task_id))
    if floor is not None:
        query = query.where(TaskEvent.received >= floor)
    types = sorted(filters.types & set(TASK_EVENT_TYPES))
    if types:
        query = query.where(TaskEvent.type.in_(types))
    if filters.task_name is not None:
        query = query.where(Task.name == filters.task_name)
    if filters.hostname is not None:
        query = query.where(TaskEvent.hostname == filters.hostname)
    if filters.since is not None:
        query = query.where(TaskEvent.received >= filters.since)
    # `received <=`/`>=` first: the range on the received index; the rest settles rows of the same time.
    if before is not None:
        query = query.where(TaskEvent.received <= before.at)
        if before.rank == TASK_RANK:
            query = query.where((TaskEvent.received < before.at) | (TaskEvent.task_id < before.first)
                                | ((TaskEvent.task_id == before.first) & (TaskEvent.seq < before.second)))
        else:
            query = query.where(TaskEvent.received < before.at)
    if after is not None:
        query = query.where(TaskEvent.received >= after.at)
        if after.rank == TASK_RANK:
            query = query.where((TaskEvent.received > after.at) | (TaskEvent.task_id > after.first)
                                | ((TaskEvent.task_id == after.first) & (TaskEvent.seq > after.second)))
    return query


def _worker_query(filters: EventFilter, before: Cursor | None, after: Cursor | None) -> Any:
    query = (WorkerEvent.select(_WORKER_EVENT_ID, WorkerEvent.online, WorkerEvent.at, WorkerEvent.reason,
                                Worker.hostname)
             .join(Worker, on=(_WORKER_ID == WorkerEvent.worker_id)))
    types = filters.types & set(WORKER_EVENT_TYPES)
    if len(types) == 1:
        query = query.where(WorkerEvent.online == ("worker-online" in types))
    if filters.hostname is not None:
        query = query.where(Worker.hostname == filters.hostname)
    if filters.since is not None:
        query = query.where(WorkerEvent.at >= filters.since)
    if before is not None:
        query = query.where(WorkerEvent.at <= before.at)
        if before.rank == WORKER_RANK:
            query = query.where((WorkerEvent.at < before.at) | (_WORKER_EVENT_ID < before.first))
    if after is not None:
        query = query.where(WorkerEvent.at >= after.at)
        if after.rank == WORKER_RANK:
            query = query.where((WorkerEvent.at > after.at) | (_WORKER_EVENT_ID > after.first))
        else:
            query = query.where(WorkerEvent.at > after.at)
    return query


def _task_row(r: dict[str, Any]) -> EventRow:
    return EventRow(
        cursor=Cursor(r["received"], TASK_RANK, r["task_id"], r["seq"]), type=r["type"], hostname=r["hostname"],
        task_uuid=r["task_uuid"], task_name=r["task_name"], data=r["data"], source=r["source"],
        extra={"timestamp": r["timestamp"], "pid": r["pid"]},
    )


def _worker_row(r: dict[str, Any]) -> EventRow:
    return EventRow(
        cursor=Cursor(r["at"], WORKER_RANK, r["id"]), hostname=r["hostname"],
        type="worker-online" if r["online"] else "worker-offline", data=json.dumps({"reason": r["reason"]}),
    )
