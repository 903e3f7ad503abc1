"""`/events`: the raw stream of stored events (task events and worker transitions), filterable, live, pausable.

The page and its fragments come from templates/events.html: `/events/newer` renders only its `rows` block
(what static/js/events.js prepends on `live:events`), `/events/count` says how many wait while paused.
"""
from __future__ import annotations

import re
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from webui.store import event_queries, queries
from webui.store.event_queries import EVENT_TYPES, Cursor, CursorError, EventFilter

bp = Blueprint("events", __name__)

PAGE_SIZE = 50
LIVE_BATCH = 100  # rows one live refresh prepends; beyond it the page links to the ones left out
COUNT_CAP = 1000
MAX_VALUE = 255  # task names and hostnames are columns of 255
SINCE = {"5m": ("last 5 minutes", 300), "1h": ("last hour", 3600), "6h": ("last 6 hours", 6 * 3600),
         "24h": ("last 24 hours", 86400), "7d": ("last 7 days", 7 * 86400)}
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class BadParameter(ValueError):
    """A query parameter no form of ours sends; the message says which and why."""


@bp.get("/events")
def index() -> tuple[str, int] | str:
    """The newest events (or those older than `before`), with the collector's counters."""
    try:
        filters, args = parse_filters(request.args)
        before = _cursor("before")
    except BadParameter as problem:
        return _page(problem=str(problem), filters=EventFilter(), args={}), 400
    result = event_queries.page(filters, before=before, limit=PAGE_SIZE)
    return _page(problem=None, filters=filters, args=args, rows=result.rows, more=result.more, before=before,
                 resume=result.resume)


@bp.get("/events/newer")
def newer() -> Response | tuple[str, int] | str:
    """The rows newer than `after`, newest first, as `<tr>`s to prepend."""
    try:
        filters, args = parse_filters(request.args)
        after = _cursor("after")
    except BadParameter as problem:
        return Response(str(problem) + "\n", status=400, mimetype="text/plain")
    result = event_queries.newer(filters, after, limit=LIVE_BATCH)
    return _render_block("events.html", "rows", rows=result.rows, skipped=result.more, args=args,
                         worker_pages=_worker_pages())


@bp.get("/events/count")
def count() -> Response | tuple[Response, int]:
    """How many rows are newer than `after` (up to 1000, or as many as a filter's walk found in its time budget:
    "capped" then says "at least"): the paused page's counter."""
    try:
        filters, _args = parse_filters(request.args)
        after = _cursor("after")
    except BadParameter as problem:
        return jsonify(error=str(problem)), 400
    n, complete = event_queries.count_newer(filters, after, cap=COUNT_CAP)
    return jsonify(count=n, capped=n >= COUNT_CAP or not complete)


def parse_filters(args: Any, now: float | None = None) -> tuple[EventFilter, dict[str, Any]]:
    """The filter the query string asks for, and the parameters to carry into links; BadParameter if wrong."""
    types = args.getlist("type")
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise BadParameter(f"Unknown event type {unknown[0][:60]!r}: the types are {', '.join(EVENT_TYPES)}.")
    task_name = _text(args, "task", "task name")
    hostname = _text(args, "worker", "worker hostname")
    since_key = args.get("since", "")
    if since_key and since_key not in SINCE:
        raise BadParameter(f"Unknown time window {since_key[:20]!r}: use one of {', '.join(SINCE)}.")
    now = time.time() if now is None else now
    since = now - SINCE[since_key][1] if since_key else None
    kept = {"type": sorted(set(types)), "task": task_name or "", "worker": hostname or "", "since": since_key}
    return EventFilter(frozenset(types), task_name, hostname, since), {k: v for k, v in kept.items() if v}


def _text(args: Any, name: str, label: str) -> str | None:
    value = args.get(name, "").strip()
    if len(value) > MAX_VALUE:
        raise BadParameter(f"A {label} is at most {MAX_VALUE} characters; this one has {len(value)}.")
    if _CONTROL_CHARACTERS.search(value):
        raise BadParameter(f"A {label} cannot contain control characters.")
    return value or None


def _cursor(name: str) -> Cursor | None:
    text = request.args.get(name, "")
    if not text:
        return None
    if len(text) > 100:
        raise BadParameter(f"The {name!r} position is too long to be one of ours.")
    try:
        return Cursor.decode(text)
    except CursorError as problem:
        raise BadParameter(f"The {name!r} position {text[:60]!r} is {problem}: follow the page's own links.") from None


def _page(problem: str | None, filters: EventFilter, args: dict[str, Any], rows: list | None = None,
          more: bool = False, before: Cursor | None = None, resume: Cursor | None = None) -> str:
    return render_template(
        "events.html", page_title="Events", problem=problem, filters=filters, args=args, rows=rows or [],
        more=more, before=before, resume=resume, skipped=False, event_types=EVENT_TYPES, since_choices=SINCE,
        status=queries.collector_status(), worker_pages=_worker_pages(), page_size=PAGE_SIZE,
    )


def _worker_pages() -> bool:
    return "workers.detail" in current_app.view_functions


def _render_block(template_name: str, block: str, **context: Any) -> str:
    """One block of a template, with the app's context processors: a fragment that cannot drift from its page."""
    template = current_app.jinja_env.get_template(template_name)
    current_app.update_template_context(context)
    return "".join(template.blocks[block](template.new_context(context)))
