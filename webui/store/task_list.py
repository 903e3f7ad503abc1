"""The tasks list: one page of the tasks a `TaskFilter` matches, read by keyset, in bounded time.

Every page is a walk along one index, in the order of the list — the *driving* index:
- by runtime (sorts slowest/fastest): `task_runtime`;
- else, with a state, name, worker or queue filter: that column's `(column, id)` index, one walk per value,
  merged by id;
- else the primary key (ids are given in the order this monitor first saw each task).
The walk goes in chunks. Each chunk is a key range of the driving index holding at most `chunk` rows; the other
filters (search text, time ranges, runtime bounds, further columns) are applied to that range only. So no
query ever sorts or scans more than one chunk, whatever the filters, and the walk stops when the page is
full, the index ends, or the time budget is spent. A page cut short by the budget says so and where it
stopped (`resume`), and the next request goes on from there: slow filters cost more clicks, never a
timeout or a full-table scan. A search text is served by its index where it can be (webui.store.task_search),
which hands candidates to the same row conditions; this walk serves it otherwise.
"""
from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from peewee import Database

from webui.store import task_search
from webui.store.database import is_sqlite
from webui.store.models import Task
from webui.task_filters import MAX_LIMIT, Cursor, TaskFilter

CHUNKS = (500, 2000, 8000, 20000)  # rows of the driving index per step; the last repeats
BUDGET = 0.06  # seconds of queries per page; the page then shows what it found and where it stopped
FINISHED_AT = "COALESCE(succeeded_at, failed_at, revoked_at, rejected_at, cancelled_at)"
TIME_COLUMNS = {"received": "received_at", "started": "started_at", "finished": FINISHED_AT}
SEARCHED_COLUMNS = ("args", "kwargs", "result", "exception")
# Driving filters, most selective first: a name usually narrows more than a worker, a worker than a state.
DRIVING_COLUMNS = (("names", "name"), ("workers", "worker"), ("queues", "queue"), ("states", "state"))
LIST_COLUMNS = ("id", "uuid", "name", "state", "worker", "queue", "args", "kwargs", "result", "exception",
                "retries", "executions", "sent_at", "received_at", "started_at", "succeeded_at", "failed_at",
                "revoked_at", "rejected_at", "cancelled_at", "runtime", "eta", "parent_id", "root_id", "detail")
KEY_COLUMNS = ("id", "runtime")  # what a page's cursor is made of: enough for the walks that only count


class KeyRow(NamedTuple):
    """A task of a walk that only counts: its cursor's columns, as a tuple (a model instance costs 5× more, and
    every live page counts its new tasks each time tasks change)."""

    id: int
    runtime: float | None


@dataclass
class TaskPage:
    tasks: list[Task]
    next_cursor: Cursor | None  # where the next page starts; None: nothing more matches
    partial: bool  # stopped by the time budget before the page was full: `next_cursor` resumes the walk
    scanned: int  # rows of the driving index looked at


@dataclass
class _Plan:
    """SQL pieces of one walk: the driving condition, the residual filters, the key."""

    db: Database
    by_runtime: bool
    descending: bool
    column: str | None  # driving column (None: primary key or runtime)
    values: tuple[str, ...]
    residual: str
    residual_params: list[Any]
    min_id: int | None = None  # no task below this id can match (`iter_all`'s received-time floor)

    @property
    def p(self) -> str:
        return str(self.db.param)

    def key_sql(self) -> str:
        return "(runtime, id)" if self.by_runtime else "id"

    def order_sql(self) -> str:
        direction = "DESC" if self.descending else "ASC"
        return f"runtime {direction}, id {direction}" if self.by_runtime else f"id {direction}"

    def beyond(self, cursor: Cursor | None, inclusive: bool = False) -> tuple[str, list[Any]]:
        """The condition "after `cursor` in list order" (exclusive unless `inclusive`)."""
        if cursor is None:
            return "", []
        op = ("<" if self.descending else ">") + ("=" if inclusive else "")
        if self.by_runtime:
            return f" AND (runtime, id) {op} ({self.p}, {self.p})", [cursor.runtime, cursor.id]
        return f" AND id {op} {self.p}", [cursor.id]

    def until(self, cursor: Cursor) -> tuple[str, list[Any]]:
        """The condition "not past `cursor`" (inclusive): the far end of a chunk."""
        op = ">=" if self.descending else "<="
        if self.by_runtime:
            return f" AND (runtime, id) {op} ({self.p}, {self.p})", [cursor.runtime, cursor.id]
        return f" AND id {op} {self.p}", [cursor.id]

    def table(self) -> str:
        """`task`, pinned to the driving index on SQLite: its planner, without statistics, might otherwise
        serve a chunk's residual filter from another index over a far wider id range."""
        if not is_sqlite(self.db):
            return "task"
        if self.by_runtime:
            return "task INDEXED BY task_runtime"
        return f"task INDEXED BY task_{self.column}_id" if self.column else "task NOT INDEXED"

    def driving(self, value: str | None = None) -> tuple[str, list[Any]]:
        condition, params = self._driving(value)
        if self.min_id is None:
            return condition, params
        return f"{condition} AND id >= {self.p}", [*params, self.min_id]

    def _driving(self, value: str | None) -> tuple[str, list[Any]]:
        if self.by_runtime:
            return "runtime IS NOT NULL", []
        if self.column is None:
            return "1 = 1", []
        if value is not None:
            return f"{self.column} = {self.p}", [value]
        return f"{self.column} IN ({', '.join([self.p] * len(self.values))})", list(self.values)


def fetch_page(db: Database, flt: TaskFilter, *, budget: float = BUDGET, clock=time.monotonic,
               min_id: int | None = None, columns: Sequence[str] = LIST_COLUMNS) -> TaskPage:
    """One page of tasks matching `flt`, from `flt.cursor` on, in the list's order (none below `min_id`), each
    task with just `columns` read (they must include `id`, and `runtime` for a runtime sort)."""
    if flt.search:
        # The search index proposes candidates, checked with the walk's own conditions (webui.store.task_search).
        found = task_search.search_page(db, flt, columns=columns, residual=_residual(db, flt, None),
                                        budget=budget, clock=clock)
        if found is not None:
            return TaskPage(*found)
    plan = replace(_plan(db, flt), min_id=min_id)
    started = clock()
    tasks: list[Task] = []
    scanned = 0
    position = flt.cursor
    per_row = 0.0  # seconds a row of the driving index costs, measured on the chunks so far
    for step, size in enumerate(itertools.chain(CHUNKS, itertools.repeat(CHUNKS[-1]))):
        if plan.residual == "" and step == 0:
            size = max(size, flt.limit + 1)  # nothing to filter out: one chunk fills the page
        elif per_row > 0 and math.isfinite(budget):  # (an export's walk has no budget)
            # No chunk may overrun what is left of the budget by much: size it from the measured cost.
            left = budget - (clock() - started)
            size = max(CHUNKS[0], min(size, int(left / per_row)))
        chunk_started = clock()
        end, count = _chunk_end(plan, position, size)
        scanned += count
        rows = _rows_between(plan, position, end, flt.limit + 1 - len(tasks), columns)
        tasks.extend(rows)
        if len(tasks) > flt.limit:
            tasks = tasks[:flt.limit]
            return TaskPage(tasks, _cursor_of(plan, tasks[-1]), False, scanned)
        if end is None or count < size:
            return TaskPage(tasks, None, False, scanned)  # the driving index has no more rows
        position = end
        now = clock()
        per_row = max(per_row, (now - chunk_started) / max(count, 1))
        if now - started + per_row * CHUNKS[0] >= budget:
            return TaskPage(tasks, end, len(tasks) < flt.limit, scanned)
    raise AssertionError("unreachable")


def count_newer(db: Database, flt: TaskFilter, newest_id: int, limit: int = 100) -> tuple[int, bool]:
    """How many tasks matching `flt` were first seen after task `newest_id` (at most `limit`); and whether
    the count is complete (False: the budget ran out first, so "at least")."""
    flt = replace(flt, sort="oldest", cursor=Cursor(newest_id), limit=limit)
    # Ids only: every live page asks this each time tasks change, and building a hundred whole rows into
    # models was four fifths of the request.
    page = fetch_page(db, flt, columns=KEY_COLUMNS)
    return len(page.tasks), not page.partial


def iter_all(db: Database, flt: TaskFilter, chunk: int = 1000) -> Iterator[Task]:
    """Every task matching `flt`, in list order, for exports: page after page without a budget.

    A received-time window is a residual filter, so the walk would read every older entry of its driving index
    (the whole history of a task name: 40-100 s for "the last 15 minutes of a common name" at 10M tasks). The
    smallest id received in the window, from `task_received_at`, ends it there instead: exact, as no task
    below that id was received in the window. That costs a read of the window's index entries, as the export
    of that window does anyway.
    """
    flt = replace(flt, limit=chunk)
    floor = _received_floor(db, flt)
    if floor == 0:
        return  # nothing was received in the window
    while True:
        page = fetch_page(db, flt, budget=float("inf"), min_id=floor)
        yield from page.tasks
        if page.next_cursor is None:
            return
        flt = flt.with_cursor(page.next_cursor)


def _received_floor(db: Database, flt: TaskFilter) -> int | None:
    """The smallest id of a task received in `flt`'s window (0: none was); None without a received window."""
    if flt.time_field != "received" or flt.after is None:
        return None
    p = str(db.param)
    where, params = [f"received_at >= {p}"], [flt.after]
    if flt.before is not None:
        where.append(f"received_at < {p}")
        params.append(flt.before)
    if is_sqlite(db):  # the received index holds the rowid: MIN(id) never leaves it
        sql = f"SELECT MIN(id) FROM task INDEXED BY task_received_at WHERE {' AND '.join(where)}"
    else:  # the fence keeps PostgreSQL from walking the primary key up from id 1 for the first match
        sql = f"SELECT MIN(id) FROM (SELECT id FROM task WHERE {' AND '.join(where)} OFFSET 0) AS received"
    row = db.execute_sql(sql, params).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


# -- the plan -------------------------------------------------------------------------------------------

def _plan(db: Database, flt: TaskFilter) -> _Plan:
    column, values = None, ()
    if not flt.by_runtime:
        for attr, name in DRIVING_COLUMNS:
            if getattr(flt, attr):
                column, values = name, getattr(flt, attr)
                break
    residual, params = _residual(db, flt, column)
    return _Plan(db, flt.by_runtime, flt.descending, column, values, residual, params)


def _residual(db: Database, flt: TaskFilter, driving: str | None) -> tuple[str, list[Any]]:
    p = str(db.param)
    parts: list[str] = []
    params: list[Any] = []
    for attr, column in DRIVING_COLUMNS:
        values = getattr(flt, attr)
        if values and column != driving:
            parts.append(f"{column} IN ({', '.join([p] * len(values))})")
            params.extend(values)
    time_column = TIME_COLUMNS[flt.time_field]
    if flt.after is not None:
        parts.append(f"{time_column} >= {p}")
        params.append(flt.after)
    if flt.before is not None:
        parts.append(f"{time_column} < {p}")
        params.append(flt.before)
    if flt.runtime_min is not None:
        parts.append(f"runtime >= {p}")
        params.append(flt.runtime_min)
    if flt.runtime_max is not None:
        parts.append(f"runtime <= {p}")
        params.append(flt.runtime_max)
    if flt.search:
        like = "LIKE" if is_sqlite(db) else "ILIKE"  # SQLite's LIKE ignores ASCII case already
        pattern = "%" + flt.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        parts.append("(" + " OR ".join(f"{c} {like} {p} ESCAPE '\\'" for c in SEARCHED_COLUMNS) + ")")
        params.extend([pattern] * len(SEARCHED_COLUMNS))
    return " AND ".join(parts), params


# -- one chunk ------------------------------------------------------------------------------------------

def _chunk_end(plan: _Plan, position: Cursor | None, size: int) -> tuple[Cursor | None, int]:
    """The key of the `size`-th row of the driving index after `position` (or of its last row when fewer
    remain), and how many rows that chunk holds. With several values, the chunk ends where every value's
    walk has been read up to, so no value's rows are skipped."""
    ends: list[tuple[Cursor | None, int]] = []
    for value in (plan.values if plan.column and len(plan.values) > 1 else (None,)):
        ends.append(_walk_end(plan, position, size, value))
    if len(ends) == 1:
        return ends[0]
    # The nearest end over the values that still have `size` rows; the others are read to their end.
    full = [end for end, count in ends if count == size and end is not None]
    if not full:
        last = [end for end, _ in ends if end is not None]
        pick = _furthest(plan, last) if last else None
        return pick, sum(count for _, count in ends)
    nearest = _nearest(plan, full)
    return nearest, size  # at least one value has more rows beyond


def _walk_end(plan: _Plan, position: Cursor | None, size: int, value: str | None) -> tuple[Cursor | None, int]:
    condition, params = plan.driving(value)
    after, after_params = plan.beyond(position)
    key = "runtime, id" if plan.by_runtime else "id"
    sql = (f"SELECT {key} FROM {plan.table()} WHERE {condition}{after} ORDER BY {plan.order_sql()} "
           f"LIMIT {plan.p} OFFSET {plan.p}")
    # The chunk's last key, straight from the index: OFFSET here skips index entries inside one bounded
    # chunk, never pages of the list. When fewer rows remain, the index's last row ends the chunk.
    row = plan.db.execute_sql(sql, [*params, *after_params, 1, size - 1]).fetchone()
    if row is not None:
        return _key(plan, row), size
    count_sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM {plan.table()} WHERE {condition}{after} LIMIT {plan.p}) AS chunk"
    count = int(plan.db.execute_sql(count_sql, [*params, *after_params, size]).fetchone()[0])
    if count == 0:
        return None, 0
    last_sql = (f"SELECT {key} FROM {plan.table()} WHERE {condition}{after} ORDER BY {plan.order_sql()} "
                f"LIMIT 1 OFFSET {plan.p}")
    return _key(plan, plan.db.execute_sql(last_sql, [*params, *after_params, count - 1]).fetchone()), count


def _rows_between(plan: _Plan, position: Cursor | None, end: Cursor | None, limit: int,
                  columns: Sequence[str]) -> list[Task]:
    if end is None:
        return []
    condition, params = plan.driving()
    after, after_params = plan.beyond(position)
    until, until_params = plan.until(end)
    residual = f" AND {plan.residual}" if plan.residual else ""
    sql = (f"SELECT {', '.join(columns)} FROM {plan.table()} WHERE {condition}{after}{until}{residual} "
           f"ORDER BY {plan.order_sql()} LIMIT {plan.p}")
    values = (*params, *after_params, *until_params, *plan.residual_params, limit)
    if tuple(columns) == KEY_COLUMNS:
        return [KeyRow(*row) for row in plan.db.execute_sql(sql, values).fetchall()]  # type: ignore[misc]  # read as tasks: .id, .runtime
    return list(Task.raw(sql, *values))


def _key(plan: _Plan, row: tuple[Any, ...]) -> Cursor:
    return Cursor(int(row[1]), float(row[0])) if plan.by_runtime else Cursor(int(row[0]))


def _cursor_of(plan: _Plan, task: Task) -> Cursor:
    return Cursor(task.id, task.runtime) if plan.by_runtime else Cursor(task.id)


def _order_key(plan: _Plan, cursor: Cursor) -> tuple[float, int]:
    key = (cursor.runtime or 0.0, cursor.id) if plan.by_runtime else (0.0, cursor.id)
    return key if not plan.descending else (-key[0], -key[1])


def _nearest(plan: _Plan, cursors: list[Cursor]) -> Cursor:
    return heapq.nsmallest(1, cursors, key=lambda c: _order_key(plan, c))[0]


def _furthest(plan: _Plan, cursors: list[Cursor]) -> Cursor:
    return heapq.nlargest(1, cursors, key=lambda c: _order_key(plan, c))[0]


# -- how many match -------------------------------------------------------------------------------------

COUNT_CAP = 10_000  # beyond this a count says "10,000+": nobody reads further, and counting further costs
COUNT_BUDGET = 0.15  # seconds of queries for one count


@dataclass(frozen=True)
class TaskCount:
    """How many tasks a filter matches, as far as it was counted."""

    count: int
    exact: bool  # True: exactly `count`; False: at least `count`
    capped: bool  # True: more than COUNT_CAP match (`count` is the cap)

    @property
    def label(self) -> str:
        """"1,234", "10,000+" or "at least 2,345": what the page and the API say."""
        if self.capped:
            return f"{self.count:,}+"
        return f"{self.count:,}" if self.exact else f"at least {self.count:,}"


def count_matching(db: Database, flt: TaskFilter, *, cap: int = COUNT_CAP, budget: float = COUNT_BUDGET,
                   clock=time.monotonic) -> TaskCount:
    """How many tasks match `flt` (its cursor ignored), counted up to `cap` along the same driving index as the
    list, in chunks, within `budget`: exact, "cap+" or, when the budget runs out first, "at least"."""
    if flt.search and task_search.usable(db, flt.search):
        return _count_pages(db, replace(flt, cursor=None, limit=MAX_LIMIT), cap, budget, clock)
    plan = _plan(db, replace(flt, cursor=None))
    if not plan.residual:
        condition, params = plan.driving()
        return _bounded(db, f"SELECT 1 FROM {plan.table()} WHERE {condition}", params, cap)
    if _only_received_range(flt):
        return _bounded(db, f"SELECT 1 FROM task INDEXED BY task_received_at WHERE {plan.residual}"
                        if is_sqlite(db) else f"SELECT 1 FROM task WHERE {plan.residual}",
                        plan.residual_params, cap)
    started, total, position = clock(), 0, None
    condition, params = plan.driving()
    for size in itertools.chain(CHUNKS, itertools.repeat(CHUNKS[-1])):
        end, scanned = _chunk_end(plan, position, size)
        if end is None:
            return TaskCount(total, True, False)
        after, after_params = plan.beyond(position)
        until, until_params = plan.until(end)
        sql = f"SELECT COUNT(*) FROM {plan.table()} WHERE {condition}{after}{until} AND {plan.residual}"
        total += int(db.execute_sql(sql, [*params, *after_params, *until_params, *plan.residual_params])
                     .fetchone()[0])
        if total > cap:
            return TaskCount(cap, False, True)
        if scanned < size:
            return TaskCount(total, True, False)
        if clock() - started >= budget:
            return TaskCount(total, False, False)
        position = end
    raise AssertionError("unreachable")


def _count_pages(db: Database, flt: TaskFilter, cap: int, budget: float, clock) -> TaskCount:
    """A search's count, page by page as the list reads it: through the search index when it serves the text
    (a rare text is then counted exactly at any size), else along the walk, within the same budget."""
    started, total = clock(), 0
    while True:
        page = fetch_page(db, flt, budget=max(0.0, budget - (clock() - started)), clock=clock,
                          columns=KEY_COLUMNS)
        total += len(page.tasks)
        if total > cap:
            return TaskCount(cap, False, True)
        if page.next_cursor is None:
            return TaskCount(total, True, False)
        if clock() - started >= budget:
            return TaskCount(total, False, False)
        flt = flt.with_cursor(page.next_cursor)


def _bounded(db: Database, select: str, params: list[Any], cap: int) -> TaskCount:
    """COUNT over at most cap + 1 rows of `select`: an index range, read no further than needed."""
    n = int(db.execute_sql(f"SELECT COUNT(*) FROM ({select} LIMIT {db.param}) AS bounded",
                           [*params, cap + 1]).fetchone()[0])
    return TaskCount(min(n, cap), n <= cap, n > cap)


def _only_received_range(flt: TaskFilter) -> bool:
    """A filter of nothing but a received-time range: `task_received_at` serves it directly."""
    others = (flt.states, flt.names, flt.workers, flt.queues, flt.search, flt.runtime_min is not None,
              flt.runtime_max is not None, flt.by_runtime)
    return flt.time_field == "received" and (flt.after is not None or flt.before is not None) and not any(others)
