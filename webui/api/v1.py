"""Our own API, `/api/v1/…`, for what Flower's lacks: the tasks list with the page's filters and keyset
cursors, a task's event timeline, workers with their online/offline history, queues with depth history, the
broker, beat schedules judged on time / late / missed, the audit log (admins) and the collector's gaps. Every
answer is a JSON object."""
from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from webui import audit, progress_promise
from webui.alerts import rules
from webui.api import params
from webui.api.errors import ApiError
from webui.api.task_dicts import task_dict, task_info
from webui.auth.access import requires
from webui.beat import board as beat_board
from webui.beat import status as beat_status
from webui.broker_info import describe_broker
from webui.request_lane import outside_lane
from webui.store import queue_queries, task_list, task_queries, worker_queries
from webui.store.models import AuditLog, CollectorGap, QueueSample
from webui.task_filters import FilterError, parse

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")

MAX_WINDOW = 7 * 86400.0  # queue samples are kept 7 days


@bp.get("/tasks")
def tasks() -> Response:
    """One page of tasks (the tasks page's filters, `limit` ≤ 500); `next_cursor` continues, `partial` says
    the page was cut short by its time budget (follow `next_cursor` all the same)."""
    try:
        flt = parse(request.args, time.time())
    except FilterError as exc:
        raise ApiError(400, str(exc)) from None
    page = task_list.fetch_page(current_app.config["WEBUI_DATABASE"], flt)
    return jsonify({"tasks": [{**task_dict(t), "queue": t.queue, "unknown_since": t.unknown_since}
                              for t in page.tasks],
                    "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
                    "partial": page.partial})


@bp.get("/tasks/count")
def tasks_count() -> Response:
    """How many tasks the filter matches, counted up to 10,000 within a time budget: `exact` false means "at
    least `count`", `capped` true means "more than `count`"; `label` says it the way the page does."""
    try:
        flt = parse(request.args, time.time())
    except FilterError as exc:
        raise ApiError(400, str(exc)) from None
    counted = task_list.count_matching(current_app.config["WEBUI_DATABASE"], flt)
    return jsonify({"count": counted.count, "exact": counted.exact, "capped": counted.capped,
                    "label": counted.label})


@bp.get("/tasks/<task_id>")
def task(task_id: str) -> Response:
    found = _task(task_id)
    return jsonify({**task_info(found), "queue": found.queue, "executions": found.executions,
                    "unknown_since": found.unknown_since, **_progress_promise(found)})


def _progress_promise(found: Any) -> dict[str, Any]:
    """`last_progress_at`: the running attempt's last report; `progress_promise`: while the task runs, its promise
    (webui.agent.expect_progress) and whether it holds, with the grace of the first stalled-task rule to call it
    broken (webui.alerts.rules.promise_grace)."""
    detail = task_queries.json_object(found.detail) or {}
    progress = detail.get("progress")
    last = progress.get("at") if isinstance(progress, dict) and progress.get("attempt") == found.attempt else None
    promise = progress_promise.of_task(found.progress_every, found.started_at, found.attempt, detail)
    if promise is None or found.state != "STARTED":
        return {"last_progress_at": last, "progress_promise": None}
    now, grace = time.time(), rules.promise_grace(found.name)
    return {"last_progress_at": last, "progress_promise": {
        "every": promise.every, "promised_at": detail.get("promised_at"), "last_sign_at": promise.last_at,
        "silent_seconds": round(promise.silent(now), 3), "grace_seconds": grace,
        "broken": promise.broken(now, grace), "text": promise.text(now, grace)}}


@bp.get("/tasks/<task_id>/events")
def task_events(task_id: str) -> Response:
    """Every stored event of the task in arrival order, and the collector's gaps during its life."""
    found = _task(task_id)
    events = task_queries.task_timeline(found)
    start, end = task_queries.task_lifetime(found, events)
    return jsonify({"uuid": found.uuid, "events": [_event(e) for e in events],
                    "gaps": [_gap(g) for g in task_queries.gaps_during(start, end)]})


@bp.get("/workers")
def workers() -> Response:
    online, offline = worker_queries.list_workers()
    return jsonify({"workers": [_worker(v) for v in online + offline]})


@bp.get("/workers/<hostname>")
def worker(hostname: str) -> Response:
    """The worker, its latest inspection, and its latest online/offline transitions (newest first)."""
    view = worker_queries.worker_detail(hostname[:255])
    if view is None or worker_queries.is_forgotten(view.worker):
        raise ApiError(404, f"Unknown worker '{hostname[:255]}'")
    return jsonify({**_worker(view), "inspection": view.data, "inspection_error": view.error,
                    "transitions": [{"online": t.online, "at": t.at, "reason": t.reason}
                                    for t in worker_queries.transitions(view.worker)]})


@bp.get("/queues")
def queues() -> Response:
    """Each queue sampled in the last hour, with its latest sample and consuming workers."""
    return jsonify({"queues": [_queue(v) for v in queue_queries.queue_overview()]})


@bp.get("/queues/<name>")
def queue(name: str) -> Response:
    """One queue's latest sample and its depths over `window` seconds (default 3600, at most 7 days)."""
    window = params.number("window", queue_queries.HOUR, 60, MAX_WINDOW) or queue_queries.HOUR
    view = queue_queries.queue_detail(name[:255], window)
    if view is None:
        raise ApiError(404, f"Unknown queue '{name[:255]}' (never sampled)")
    return jsonify({**_queue(view), "window": window,
                    "history": [{"at": at, "depth": depth} for at, depth in view.points]})


@bp.get("/broker")
@outside_lane
def broker() -> Response:
    """What the broker says about itself (cached 5 s); `reachable` false with `notes` when it does not answer."""
    info = describe_broker(current_app.extensions["webui_celery_app"])
    return jsonify({"url": info.url, "transport": info.transport, "reachable": info.reachable,
                    "facts": [{"label": label, "value": value} for label, value in info.facts],
                    "databases": [{"db": db, "keys": keys, "expires": expires}
                                  for db, keys, expires in info.databases],
                    "notes": info.notes, "fetched_at": info.fetched_at})


@bp.get("/beat")
def beat() -> Response:
    """Every beat entry judged as of the watcher's last pass, beat's liveness, and the sources read."""
    board = beat_board.load_board(_settings(), _app_timezone(), include_removed=params.flag("removed"))
    return jsonify({"as_of": board.as_of, "stale": board.stale, "liveness": _liveness(board.liveness),
                    "pong_nodes": board.pong_nodes, "sources": board.sources,
                    "entries": [_beat_entry(e) for e in board.entries]})


@bp.get(f"/beat/<{params.ID}:entry_id>")
def beat_entry(entry_id: int) -> Response:
    """One beat entry with its fire history, newest first (`limit`, default 200)."""
    limit = params.integer("limit", 200, 1, 1000) or 200
    found = beat_board.load_entry(entry_id, _settings(), _app_timezone(), fires=limit)
    if found is None:
        raise ApiError(404, f"Unknown beat entry {entry_id}")
    entry, board = found
    return jsonify({**_beat_entry(entry, fires=limit), "as_of": board.as_of, "stale": board.stale})


@bp.get("/audit")
@requires("admin", control=False)
def audit_log() -> Response:
    """Audit entries, newest first, 100 a page; `before` (an entry id) continues."""
    before = params.integer("before", None, 1, 10**18)
    entries: list[AuditLog] = audit.entries(before)
    return jsonify({"entries": [{k: getattr(e, k) for k in ("id", "at", "actor", "provider", "role", "action",
                                                             "target", "address", "result", "detail")}
                                for e in entries],
                    "next_before": entries[-1].id if len(entries) == audit.PAGE else None})


@bp.get("/gaps")
def gaps() -> Response:
    """When the collector could not see events, newest first (`limit`, default 50, at most 500)."""
    limit = params.integer("limit", 50, 1, 500) or 50
    rows = CollectorGap.select().order_by(CollectorGap.started_at.desc()).limit(limit)
    return jsonify({"gaps": [_gap(g) for g in rows]})


def _task(task_id: str) -> Any:
    found = task_queries.task_by_uuid(task_id[:255])
    if found is None:
        raise ApiError(404, f"Unknown task '{task_id[:255]}'")
    return found


def _event(event: task_queries.TimelineEvent) -> dict[str, Any]:
    return {"seq": event.seq, "type": event.type, "timestamp": event.timestamp, "received": event.received,
            "hostname": event.hostname, "pid": event.pid, "source": event.source, "data": event.data}


def _gap(gap: CollectorGap) -> dict[str, Any]:
    return {"started_at": gap.started_at, "ended_at": gap.ended_at, "kind": gap.kind, "reason": gap.reason,
            "events_lost": gap.events_lost}


def _worker(view: worker_queries.WorkerView) -> dict[str, Any]:
    w = view.worker
    return {"hostname": w.hostname, "online": bool(w.online), "status_changed_at": w.status_changed_at,
            "offline_reason": w.offline_reason, "first_seen": w.first_seen, "last_seen": w.last_seen,
            "last_heartbeat": w.last_heartbeat, "pid": w.pid, "sw_ident": w.sw_ident, "sw_ver": w.sw_ver,
            "sw_sys": w.sw_sys, "processed": w.processed, "active": w.active, "loadavg": view.loadavg,
            "clock_skew": view.clock_skew, "pool": view.pool_name, "concurrency": view.concurrency,
            "queues": view.queues, "inspected_at": view.inspected_at}


def _settings() -> Any:
    return current_app.config["WEBUI_SETTINGS"]


def _app_timezone() -> str:
    return str(current_app.extensions["webui_celery_app"].conf.timezone or "UTC")


def _liveness(liveness: Any) -> dict[str, Any]:
    return {"state": liveness.state, "reason": liveness.reason, "last_fire_at": liveness.last_fire_at}


def _beat_entry(entry: beat_board.BoardEntry, fires: int = beat_board.RECENT_FIRES) -> dict[str, Any]:
    row, status = entry.row, entry.status
    return {
        "id": row.id, "source": row.source, "name": row.name, "task": row.task, "schedule": entry.schedule,
        "schedule_text": entry.schedule_text, "timezone": entry.timezone, "args": entry.args,
        "kwargs": entry.kwargs, "queue": row.queue, "options": entry.options, "enabled": bool(row.enabled),
        "description": row.description, "first_seen": row.first_seen, "changed_at": row.changed_at,
        "removed_at": row.removed_at,
        "scheduler": {"last_run_at": row.last_run_at, "total_run_count": row.total_run_count,
                      "next_due_at": row.next_due_at},
        "state": status.state, "grace": status.grace, "period": status.period,
        "last_fired_at": status.last_fired_at, "last_fired_from": status.last_fired_from,
        "next_due_at": status.next_due_at, "overdue_by": status.overdue_by, "missed_count": status.missed_count,
        "drift": status.drift, "too_often": status.too_often, "last_outcome": status.last_outcome,
        "publish_failed": _beat_fire(status.publish_failed) if status.publish_failed is not None else None,
        "fires": [_beat_fire(f) for f in status.fires[:fires]],
    }


def _beat_fire(fire: beat_status.Fire) -> dict[str, Any]:
    """One fire, or beat's failed attempt at one (`failed`: the exception; `task_uuid` then None when the
    publish never named a task)."""
    return {"at": fire.at, "task_uuid": fire.task_id, "sender": fire.sender, "state": fire.state,
            "due": fire.due, "lateness": fire.lateness, "failed": fire.failed}


def _queue(view: queue_queries.QueueView) -> dict[str, Any]:
    latest: QueueSample = view.latest
    return {"name": view.name, "depth": latest.depth, "ready": latest.ready, "unacked": latest.unacked,
            "consumers": view.consumer_count, "oldest_age": latest.oldest_age, "sampled_at": latest.at,
            "workers": view.workers, "transport": view.transport}
