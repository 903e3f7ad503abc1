"""`/api/tasks` with Flower's parameters, answered from the store with bounded work.

Flower sorts and pages the (at most `max_tasks`, 10,000 by default) tasks it holds in memory. We walk the
tasks list's keyset index (webui.store.task_list) instead, so:
- `offset` is honoured by walking past that many matching tasks, which costs as much as reading them:
  `offset + limit` may not exceed `WINDOW` (10,000, Flower's default memory). Past it, a 400 points to
  `/api/v1/tasks`, whose cursors page through everything at a constant cost.
- no `sort_by`, or `-received`: newest first; `received`: oldest first — both in the order this monitor first
  saw each task, which is the order they were received. `name`, `state`, `started` (and `-…`) sort the
  newest `WINDOW` matching tasks, as Flower sorts what it holds.
- the whole walk stops after `DEADLINE` seconds; a response cut short says so in `X-WebUI-Partial: true`.
"""
from __future__ import annotations

import datetime
import re
import time
from dataclasses import dataclass, replace
from typing import Any

from peewee import Database
from werkzeug.datastructures import MultiDict

from webui.api import params
from webui.api.errors import ApiError
from webui.api.task_dicts import ROW_COLUMNS
from webui.store import task_list
from webui.store.models import Task
from webui.task_filters import FilterError, TaskFilter, parse

WINDOW = 10_000
DEFAULT_LIMIT = 1000
DEADLINE = 5.0  # seconds of walking per request
PAGE = 1000  # tasks per step of the walk
SORTS = ("name", "state", "received", "started")
_SEARCH_TERM = re.compile(r'(?:[^\s,"]|"(?:\\.|[^"])*")+')  # Flower's: words, or "quoted words"


@dataclass
class Query:
    flt: TaskFilter
    offset: int
    limit: int
    sort_by: str | None
    args_terms: tuple[str, ...] = ()
    kwargs_terms: tuple[tuple[str, str], ...] = ()
    result_term: str | None = None

    def matches(self, task: Task) -> bool:
        """The search terms SQL could not apply: every `args:` term, `kwargs:key=value`, `result:`."""
        if any(term not in (task.args or "") for term in self.args_terms):
            return False
        for key, value in self.kwargs_terms:
            kwargs = task.kwargs or ""
            if f"'{key}': {value}" not in kwargs and f"'{key}': '{value}'" not in kwargs:
                return False
        return self.result_term is None or self.result_term in (task.result or "")

    @property
    def filters_in_python(self) -> bool:
        return bool(self.args_terms or self.kwargs_terms or self.result_term is not None)


def parse_query(values: Any, now: float) -> Query:
    """Flower's parameters → a Query; a bad one raises ApiError(400)."""
    limit = _int(values.get("limit"), "limit", DEFAULT_LIMIT)
    offset = _int(values.get("offset"), "offset", 0)
    if limit < 1:
        raise ApiError(400, "'limit' must be at least 1.")
    if offset + limit > WINDOW:
        raise ApiError(400, f"'offset' + 'limit' may be at most {WINDOW} here (each skipped task is read); "
                            "page further with /api/v1/tasks and its 'cursor'.")
    sort_by = values.get("sort_by") or None
    if sort_by is not None and sort_by.lstrip("-") not in SORTS:
        raise ApiError(400, f"'sort_by' must be one of {', '.join(SORTS)}, '-' in front for descending; "
                            f"got {sort_by!r}.")
    page: MultiDict[str, str] = MultiDict()
    state = (values.get("state") or "").strip()
    if state and state.lower() != "all":
        page.add("state", state)
    for ours, flowers in (("name", "taskname"), ("worker", "workername")):
        if values.get(flowers):
            page.add(ours, values[flowers])
    for ours, flowers in (("from", "received_start"), ("to", "received_end")):
        if values.get(flowers):
            page.add(ours, repr(_local_minute(values[flowers], flowers)))
    page.add("sort", "oldest" if sort_by == "received" else "newest")
    query = Query(parse_flt(page, now), offset, limit, sort_by)
    return _with_search(query, values.get("search") or "", now)


def parse_flt(page: MultiDict[str, str], now: float) -> TaskFilter:
    try:
        return parse(page, now)
    except FilterError as exc:
        raise ApiError(400, str(exc)) from None


def _with_search(query: Query, search: str, now: float) -> Query:
    """Flower's search syntax: `state:X`, `args:x`, `kwargs:key=value`, `result:x`, or free text."""
    if len(search) > 1000:
        raise ApiError(400, f"The search is at most 1000 characters; this one has {len(search)}.")
    states: list[str] = list(query.flt.states)
    text: str | None = None
    args, kwargs, result = [], [], None
    for part in _SEARCH_TERM.findall(search):
        kind, sep, value = part.partition(":")
        if not sep or kind not in ("state", "args", "kwargs", "result"):
            kind, value = "any", part
        value = value.strip('"')
        if kind == "state":
            states.append(value)
        elif kind == "args":
            args.append(value)
        elif kind == "kwargs":
            key, eq, kwarg = value.partition("=")
            if not eq or not key:
                raise ApiError(400, f"A kwargs search is kwargs:key=value; got {part!r}.")
            kwargs.append((key, kwarg))
        elif kind == "result":
            result = value
        else:
            text = value
    # The SQL search (args, kwargs, result, exception) narrows the walk; the exact terms are checked per row.
    text = text or result or (args[0] if args else None)
    page: MultiDict[str, str] = MultiDict([("state", s) for s in states])
    flt = parse_flt(page, now) if states else query.flt
    if text and len(text) > 200:
        raise ApiError(400, "A search term is at most 200 characters.")
    flt = replace(query.flt, states=flt.states, search=text or None)
    return replace(query, flt=flt, args_terms=tuple(args), kwargs_terms=tuple(kwargs), result_term=result)


def select(db: Database, query: Query, *, deadline: float = DEADLINE) -> tuple[list[dict[str, Any]], bool]:
    """The tasks of the answer, in its order, as rows of `ROW_COLUMNS`; and whether the walk ran out of time."""
    sort_in_memory = query.sort_by is not None and query.sort_by.lstrip("-") != "received"
    want = WINDOW if sort_in_memory else query.offset + query.limit
    key = (query.sort_by or "").lstrip("-")
    column = {"received": "received_at", "started": "started_at"}.get(key, key)
    # The walk reads only what it sorts and filters on; the answer's rows are read whole at the end.
    columns = (*task_list.KEY_COLUMNS, *(("args", "kwargs", "result") if query.filters_in_python else ()),
               *((column,) if sort_in_memory else ()))
    found, partial = _walk(db, query, want, time.monotonic() + deadline, columns)
    if sort_in_memory:
        known = [t for t in found if getattr(t, column) is not None]
        known.sort(key=lambda t: getattr(t, column), reverse=query.sort_by.startswith("-"))  # type: ignore[union-attr]
        found = known + [t for t in found if getattr(t, column) is None]
    return _full_rows(found[query.offset:query.offset + query.limit]), partial


def _walk(db: Database, query: Query, want: int, deadline: float,
          columns: tuple[str, ...]) -> tuple[list[Task], bool]:
    found: list[Task] = []
    flt = replace(query.flt, limit=PAGE)
    while len(found) < want:
        if not query.filters_in_python:  # every row read is kept: read no more than are wanted
            flt = replace(flt, limit=min(PAGE, want - len(found)))
        page = task_list.fetch_page(db, flt, columns=columns)
        found.extend(t for t in page.tasks if query.matches(t))
        if page.next_cursor is None:
            return found[:want], False
        if time.monotonic() >= deadline:
            return found[:want], True
        flt = flt.with_cursor(page.next_cursor)
    return found[:want], False


def _full_rows(tasks: list[Task]) -> list[dict[str, Any]]:
    """The walk reads only the columns it sorts and filters on; Flower's dict needs more (traceback, exchange, …),
    read here as plain rows of `task_dicts.ROW_COLUMNS`."""
    rows: dict[int, dict[str, Any]] = {}
    ids = [t.id for t in tasks]
    columns = [getattr(Task, name) for name in ROW_COLUMNS]
    for start in range(0, len(ids), 500):
        chunk: Any = Task.select(*columns).where(Task.id.in_(ids[start:start + 500])).dicts()
        rows.update((row["id"], row) for row in chunk)
    return [rows[i] for i in ids if i in rows]


def _int(value: str | None, name: str, default: int) -> int:
    number = params.parse_integer(value, name, default, 0, WINDOW)
    assert number is not None  # the default is a number
    return number


def _local_minute(value: str, name: str) -> float:
    """Flower's `%Y-%m-%d %H:%M`, in the server's local time zone (as Flower reads it)."""
    try:
        return datetime.datetime.strptime(value.strip(), "%Y-%m-%d %H:%M").timestamp()
    except ValueError:
        raise ApiError(400, f"'{name}' must be a time like 2026-12-01 09:30 (%Y-%m-%d %H:%M); "
                            f"got {value!r}.") from None
