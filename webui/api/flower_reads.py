"""Flower's read routes (`/api/workers`, `/api/tasks`, `/api/task/types`, `/api/task/info`,
`/api/queues/length`), same paths, parameters and shapes, answered from the store: tasks from before a
restart are still there, and no request waits on a broadcast to the workers."""
from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from webui.api import flower_task_query, params
from webui.api.errors import ApiError
from webui.api.task_dicts import row_dict, task_info
from webui.store import queue_queries
from webui.store.models import Worker, WorkerInspection
from webui.store.task_queries import task_by_uuid, task_names
from webui.store.worker_queries import visible

bp = Blueprint("flower_api", __name__)

INSPECTED = ("stats", "active_queues", "registered", "scheduled", "active", "reserved", "revoked", "conf")
MAX_TYPES = 10_000


def ordered_json(value: Any, status: int = 200) -> Response:
    """JSON keeping the object's key order (Flower's `/api/tasks` is an ordered object)."""
    return Response(json.dumps(value, default=str, sort_keys=False), status=status, mimetype="application/json")


@bp.get("/api/workers")
def workers() -> Response:
    """`{worker: {stats, active_queues, …, timestamp}}` from the collector's latest inspection of each worker
    (`refresh` is accepted and reads the same: the collector inspects every `--inspect-interval` seconds);
    `status=1`: `{worker: online}`; `workername`: that worker only, 404 if unknown."""
    params.flag("refresh")
    workername = params.text("workername", max_length=255) or None
    known = {w.hostname: w for w in Worker.select().where(visible())}
    if workername is not None and workername not in known:
        raise ApiError(404, f"Unknown worker '{workername}'")
    if params.flag("status"):
        return jsonify({name: bool(w.online) for name, w in sorted(known.items())
                        if workername in (None, name)})
    answer: dict[str, Any] = {}
    query = WorkerInspection.select().order_by(WorkerInspection.hostname)
    if workername is not None:
        query = query.where(WorkerInspection.hostname == workername)
    for inspection in query:
        if inspection.hostname not in known:
            continue
        try:
            data = json.loads(inspection.data) if inspection.data else {}
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        answer[inspection.hostname] = {**{c: data[c] for c in INSPECTED if c in data},
                                       "timestamp": inspection.at}
    return ordered_json(answer)


@bp.get("/api/tasks")
def tasks() -> Response:
    """Flower's task list: an ordered object `{uuid: task}` (see webui.api.flower_task_query for the bounds)."""
    query = flower_task_query.parse_query(request.values, time.time())
    found, partial = flower_task_query.select(current_app.config["WEBUI_DATABASE"], query)
    response = ordered_json({row["uuid"]: row_dict(row) for row in found})
    if partial:
        response.headers["X-WebUI-Partial"] = "true"
    return response


@bp.get("/api/task/types")
def task_types() -> Response:
    """`{"task-types": [sorted names]}`: every name stored, and those the workers say they have registered."""
    names = set(task_names(MAX_TYPES))
    inspections: list[tuple[str | None]] = list(WorkerInspection.select(WorkerInspection.data).tuples())  # type: ignore[arg-type]
    for (data,) in inspections:
        try:
            registered = (json.loads(data) if data else {}).get("registered")
        except (ValueError, AttributeError):
            continue
        if isinstance(registered, list):
            names.update(str(entry).split(" [")[0] for entry in registered)  # "name [rate_limit=…]"
    return jsonify({"task-types": sorted(names)})


@bp.get("/api/task/info/<task_id>")
def task_info_route(task_id: str) -> Response:
    """One task as Flower's `Task.as_dict()`, with its children's ids; 404 if this monitor never saw it."""
    task = task_by_uuid(task_id[:255])
    if task is None:
        raise ApiError(404, f"Unknown task '{task_id[:255]}'")
    return ordered_json(task_info(task))


@bp.get("/api/queues/length")
def queues_length() -> Response:
    """`{"active_queues": [{"name", "messages"}]}`: each queue's latest sample of the last hour."""
    views = queue_queries.queue_overview()
    return jsonify({"active_queues": [{"name": v.name, "messages": v.latest.depth} for v in views]})
