"""Read queries of the events page: task events and worker transitions as one stream, newest first.

The stream is ordered by the key (time, kind, id…): a task event's time is `received` (the collector's clock,
indexed by `task_event_received`), a worker transition's is `at` (the same clock). Pages are keyset ranges of
that key, never an OFFSET, so the thousandth page costs what the first does and new rows never shift a page.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from webui.store.models import Task, TaskEvent, Worker, WorkerEvent

TASK_EVENT_TYPES = ("task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
                    "task-retried", "task-revoked", "task-rejected", "task-cancelled")
WORKER_EVENT_TYPES = ("worker-online", "worker-offline")
EVENT_TYPES = TASK_EVENT_TYPES + WORKER_EVENT_TYPES

# Among rows of the same time, task events sort above worker transitions.
TASK_RANK, WORKER_RANK = 1, 0
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


def page(filters: EventFilter, before: Cursor | None = None, limit: int = 50) -> EventPage:
    """The newest `limit` rows matching `filters`, older than `before` when given."""
    rows = _merged(filters, before=before, after=None, limit=limit + 1)
    return EventPage(rows[:limit], len(rows) > limit)


def newer(filters: EventFilter, after: Cursor | None, limit: int = 100) -> EventPage:
    """The newest `limit` rows newer than `after`; `more` says some in between were left out."""
    rows = _merged(filters, before=None, after=after, limit=limit + 1)
    return EventPage(rows[:limit], len(rows) > limit)


def count_newer(filters: EventFilter, after: Cursor | None, cap: int = 1000) -> int:
    """How many rows are newer than `after`, counting no further than `cap`."""
    total = 0
    if filters.wants_task_events():
        total += _task_query(filters, None, after).limit(cap).count()
    if filters.wants_worker_events() and total < cap:
        total += _worker_query(filters, None, after).limit(cap).count()
    return min(total, cap)


def _merged(filters: EventFilter, before: Cursor | None, after: Cursor | None, limit: int) -> list[EventRow]:
    rows: list[EventRow] = []
    if filters.wants_task_events():
        query = _task_query(filters, before, after).order_by(
            TaskEvent.received.desc(), TaskEvent.task_id.desc(), TaskEvent.seq.desc()).limit(limit)
        rows += [_task_row(r) for r in query.dicts()]
    if filters.wants_worker_events():
        query = _worker_query(filters, before, after).order_by(WorkerEvent.at.desc(), _WORKER_EVENT_ID.desc())
        rows += [_worker_row(r) for r in query.limit(limit).dicts()]
    rows.sort(key=lambda row: row.cursor, reverse=True)
    return rows[:limit]


def _task_query(filters: EventFilter, before: Cursor | None, after: Cursor | None) -> Any:
    query = (TaskEvent.select(TaskEvent.task_id, TaskEvent.seq, TaskEvent.type, TaskEvent.received,
                              TaskEvent.hostname, TaskEvent.timestamp, TaskEvent.pid, TaskEvent.source,
                              TaskEvent.data, Task.uuid.alias("task_uuid"), Task.name.alias("task_name"))
             .join(Task, on=(Task.id == TaskEvent.task_id)))
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
