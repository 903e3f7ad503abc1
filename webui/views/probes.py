"""Health probes for uptime monitors: 200 when the thing is verified fine, 503 when not, JSON saying why.

Public like `/healthcheck` (webui.auth.gate.PUBLIC_ENDPOINTS): uptime monitors often can't send a token, and
the bodies hold only counts, the queue asked about and beat entry names, never hostnames or task data.
"""
from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from webui.beat import board as beat_board
from webui.beat import status as beat_status
from webui.store import queries, queue_queries

bp = Blueprint("probes", __name__)
QUEUE_SAMPLE_STALE = 120.0  # seconds: a sample older than this no longer vouches for the queue


def _answer(ok: bool, status_code: int | None = None, status: str | None = None, **body: Any) -> Response:
    response = jsonify({"status": status or ("ok" if ok else "fail"), **body})
    response.status_code = status_code or (200 if ok else 503)
    response.headers["Cache-Control"] = "no-store"
    return response


def _whole_number(name: str, default: int) -> int | Response:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        return _answer(False, 400, reason=f"{name} must be a whole number >= 0, got {text!r}")
    return value


@bp.get("/health/workers")
def workers() -> Response:
    """200 when at least `min` (default 1) workers are online."""
    minimum = _whole_number("min", 1)
    if isinstance(minimum, Response):
        return minimum
    online, _ = queries.workers_by_status()
    count = len(online)
    if count >= minimum:
        return _answer(True, online=count, min=minimum)
    return _answer(False, online=count, min=minimum,
                   reason=f"{count} worker{'s' if count != 1 else ''} online, fewer than {minimum}")


@bp.get("/health/queue/<path:name>")
def queue(name: str) -> Response:
    """200 when the queue's latest depth, sampled recently, is at most `max` (default 1000)."""
    maximum = _whole_number("max", 1000)
    if isinstance(maximum, Response):
        return maximum
    view = queue_queries.queue_detail(name, window=0)
    if view is None:
        return _answer(False, queue=name, max=maximum, reason="this queue has never been sampled")
    age = time.time() - view.latest.at
    depth = view.latest.depth
    if age > QUEUE_SAMPLE_STALE:
        return _answer(False, queue=name, max=maximum, depth=depth, sampled_seconds_ago=round(age),
                       reason=f"no sample for {age:.0f}s: is the collector running?")
    if depth is None:
        return _answer(False, queue=name, max=maximum, depth=None, reason="the broker did not give a depth")
    if depth > maximum:
        return _answer(False, queue=name, max=maximum, depth=depth,
                       reason=f"{depth} messages waiting, more than {maximum}")
    return _answer(True, queue=name, max=maximum, depth=depth)


@bp.get("/health/beat")
def beat() -> Response:
    """200 while no enabled beat entry is missed; 503 with the missed entries (or why nothing is known)."""
    settings = current_app.config["WEBUI_SETTINGS"]
    timezone = str(current_app.extensions["webui_celery_app"].conf.timezone or "UTC")
    board = beat_board.load_board(settings, timezone)
    judged = [e for e in board.entries if e.status.state not in beat_status.UNJUDGED]
    if not judged:
        return _answer(False, status="unknown", entries=0,
                       reason="no beat schedule is watched: give the app (-A) with its beat_schedule, or a "
                              "schedule file, RedBeat or django-celery-beat (see docs/beat.md)")
    body: dict[str, Any] = {"entries": len(judged), "beat": board.liveness.state, "as_of": board.as_of}
    if board.stale:
        return _answer(False, **body, reason="the beat watcher has not looked recently: is the collector running?")
    missed = board.missed
    if missed:
        names = ", ".join(e.row.name for e in missed[:10])
        return _answer(False, **body, missed=[e.row.name for e in missed],
                       reason=f"{len(missed)} entr{'ies' if len(missed) != 1 else 'y'} missed: {names}")
    late = [e.row.name for e in board.entries if e.status.state == beat_status.LATE]
    return _answer(True, **body, late=late)
