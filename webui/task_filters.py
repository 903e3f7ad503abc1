"""The tasks list's filters: query parameters → a validated `TaskFilter`, and back.

Pure (no database, no Flask) so the page, the exports and the API share one parser and one set of error
messages. A bad parameter raises `FilterError` with a message meant for the person who typed it; the views
turn it into a 400.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field, replace
from typing import Any

from webui.collector.merge import ALL_STATES

SORTS = {
    "newest": "newest first seen",
    "oldest": "oldest first seen",
    "slowest": "slowest first",
    "fastest": "fastest first",
}
TIME_FIELDS = {"received": "received", "started": "started", "finished": "finished"}
RANGES = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
MAX_VALUES = 20  # several states, names… at once; more is not a filter a person types
MAX_TEXT = 255  # the columns' own limit
MAX_SEARCH = 200
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_CURSOR = re.compile(r"^(?:(?P<id>\d{1,18})|(?P<runtime>-?\d+(?:\.\d+)?(?:e-?\d+)?):(?P<rid>\d{1,18}))$")


class FilterError(ValueError):
    """A query parameter that is not a valid filter; the message says which and why."""


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last row's id, and its runtime when sorted by runtime."""

    id: int
    runtime: float | None = None

    def encode(self) -> str:
        return str(self.id) if self.runtime is None else f"{self.runtime!r}:{self.id}"


@dataclass(frozen=True)
class TaskFilter:
    states: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    time_field: str = "received"
    after: float | None = None  # epoch seconds, inclusive
    before: float | None = None  # epoch seconds, exclusive
    range: str | None = None  # a preset ("1h") that set `after`, kept to show it selected
    runtime_min: float | None = None
    runtime_max: float | None = None
    search: str | None = None
    sort: str = "newest"
    cursor: Cursor | None = None
    limit: int = DEFAULT_LIMIT
    tz_offset: int = 0  # minutes east of UTC of the viewer, for times typed without a zone
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def by_runtime(self) -> bool:
        return self.sort in ("slowest", "fastest")

    @property
    def descending(self) -> bool:
        return self.sort in ("newest", "slowest")

    @property
    def active(self) -> bool:
        """Anything that narrows the list (sorting and paging do not)."""
        return bool(self.states or self.names or self.workers or self.queues or self.after is not None
                    or self.before is not None or self.runtime_min is not None or self.runtime_max is not None
                    or self.search)

    def with_cursor(self, cursor: Cursor | None) -> TaskFilter:
        return replace(self, cursor=cursor)

    def query_args(self, *, cursor: bool = False) -> list[tuple[str, str]]:
        """The filter as query parameters (without the cursor unless asked), for links and exports."""
        args: list[tuple[str, str]] = [("state", s) for s in self.states]
        args += [("name", n) for n in self.names] + [("worker", w) for w in self.workers]
        args += [("queue", q) for q in self.queues]
        for key in ("time_field", "from", "to", "range", "runtime_min", "runtime_max", "q", "tz"):
            value = self.raw.get(key)
            if value not in (None, ""):
                args.append((key, str(value)))
        if self.sort != "newest":
            args.append(("sort", self.sort))
        if self.limit != DEFAULT_LIMIT:
            args.append(("limit", str(self.limit)))
        if cursor and self.cursor is not None:
            args.append(("cursor", self.cursor.encode()))
        return args


def parse(args: Any, now: float) -> TaskFilter:
    """Parse `args` (anything with `.getlist`); raises FilterError on the first bad parameter."""
    raw: dict[str, Any] = {}

    def one(key: str) -> str | None:
        values = [v.strip() for v in args.getlist(key)]
        values = [v for v in values if v]
        if len(values) > 1:
            raise FilterError(f"'{key}' was given {len(values)} times; give it once.")
        if values:
            raw[key] = values[0]
        return values[0] if values else None

    tz_offset = _int(one("tz"), "tz", -14 * 60, 14 * 60) or 0
    time_field = one("time_field") or "received"
    if time_field not in TIME_FIELDS:
        raise FilterError(f"'time_field' must be one of {', '.join(TIME_FIELDS)}; got {time_field!r}.")
    after, before, preset = _time_range(one("range"), one("from"), one("to"), now, tz_offset)
    runtime_min = _float(one("runtime_min"), "runtime_min")
    runtime_max = _float(one("runtime_max"), "runtime_max")
    if runtime_min is not None and runtime_max is not None and runtime_min > runtime_max:
        raise FilterError("'runtime_min' is above 'runtime_max': no task can match.")
    search = one("q")
    if search is not None and len(search) > MAX_SEARCH:
        raise FilterError(f"The search text is at most {MAX_SEARCH} characters; this one has {len(search)}.")
    sort = one("sort") or "newest"
    if sort not in SORTS:
        raise FilterError(f"'sort' must be one of {', '.join(SORTS)}; got {sort!r}.")
    limit = _int(one("limit"), "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
    return TaskFilter(
        states=_states(args.getlist("state")),
        names=_texts(args.getlist("name"), "name"),
        workers=_texts(args.getlist("worker"), "worker"),
        queues=_texts(args.getlist("queue"), "queue"),
        time_field=time_field, after=after, before=before, range=preset,
        runtime_min=runtime_min, runtime_max=runtime_max, search=search, sort=sort,
        cursor=_cursor(one("cursor"), by_runtime=sort in ("slowest", "fastest")),
        limit=limit, tz_offset=tz_offset, raw=raw,
    )


def _states(values: list[str]) -> tuple[str, ...]:
    states = []
    for value in values:
        for part in value.split(","):  # state=FAILURE,RETRY works as well as state=FAILURE&state=RETRY
            state = part.strip().upper()
            if not state:
                continue
            if state not in ALL_STATES:
                raise FilterError(f"Unknown state {part.strip()!r}; the states are {', '.join(ALL_STATES)}.")
            if state not in states:
                states.append(state)
    return tuple(states)


def _texts(values: list[str], key: str) -> tuple[str, ...]:
    texts = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        if len(value) > MAX_TEXT:
            raise FilterError(f"A '{key}' is at most {MAX_TEXT} characters; this one has {len(value)}.")
        if any(ord(c) < 32 for c in value):
            raise FilterError(f"A '{key}' cannot contain control characters.")
        if value not in texts:
            texts.append(value)
    if len(texts) > MAX_VALUES:
        raise FilterError(f"At most {MAX_VALUES} values of '{key}' at once; got {len(texts)}.")
    return tuple(texts)


def _float(value: str | None, key: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise FilterError(f"'{key}' must be a number of seconds; got {value!r}.") from None
    if not (0 <= number < 1e9):
        raise FilterError(f"'{key}' must be a number of seconds from 0; got {value!r}.")
    return number


def _int(value: str | None, key: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise FilterError(f"'{key}' must be a whole number; got {value!r}.") from None
    if not low <= number <= high:
        raise FilterError(f"'{key}' must be between {low} and {high}; got {number}.")
    return number


def _time_range(preset: str | None, start: str | None, end: str | None, now: float,
                tz_offset: int) -> tuple[float | None, float | None, str | None]:
    if preset is not None:
        if preset not in RANGES:
            raise FilterError(f"'range' must be one of {', '.join(RANGES)}; got {preset!r}.")
        if start is not None:
            raise FilterError("Give either a 'range' or a 'from' time, not both.")
        return now - RANGES[preset], parse_time(end, "to", tz_offset), preset
    after, before = parse_time(start, "from", tz_offset), parse_time(end, "to", tz_offset)
    if after is not None and before is not None and after >= before:
        raise FilterError("'from' must be earlier than 'to'.")
    return after, before, None


def parse_time(value: str | None, key: str, tz_offset: int = 0) -> float | None:
    """An ISO 8601 time (a time without a zone is in the viewer's offset `tz_offset`) or epoch seconds."""
    if value is None:
        return None
    try:
        return float(value) if re.fullmatch(r"\d{9,11}(?:\.\d+)?", value) else _iso(value, tz_offset)
    except ValueError:
        raise FilterError(f"'{key}' must be a time like 2026-12-01T09:30 or epoch seconds; got {value!r}.") from None


def _iso(value: str, tz_offset: int) -> float:
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone(datetime.timedelta(minutes=tz_offset)))
    return moment.timestamp()


def _cursor(value: str | None, *, by_runtime: bool) -> Cursor | None:
    if value is None:
        return None
    match = _CURSOR.match(value)
    if match is None or (match["runtime"] is not None) != by_runtime:
        raise FilterError("The 'cursor' is not one this page made (it may belong to another sort order): "
                          "start again from the first page.")
    if match["id"] is not None:
        return Cursor(int(match["id"]))
    return Cursor(int(match["rid"]), float(match["runtime"]))
