"""Flower's control routes: worker shutdown, pool and consumer operations (admin), task revoke, abort, rate
and time limits (operator), all through webui.control and audited with the workers' replies.

As in Flower: success is `{"message": …}`; a worker that answers with an error is a 403 carrying its text;
a worker this monitor does not know is a 404. Beyond Flower: a worker known to be offline, or one that did not
answer within the control timeout, is a 409; an unreachable broker is a 503 (never a 500).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from celery import Celery
from flask import Blueprint, Response, current_app, jsonify

from webui import audit, control
from webui.api import params
from webui.api.errors import ApiError
from webui.auth.access import requires
from webui.store.models import Task, Worker, WorkerInspection
from webui.store.worker_queries import visible

bp = Blueprint("flower_control", __name__)


def celery_app() -> Celery:
    return current_app.extensions["webui_celery_app"]


def run(action: Callable[..., control.ControlResult], *args: Any, **kwargs: Any) -> control.ControlResult:
    """Run one control; a bad input is a 400, an unreachable broker a 503 (both audited)."""
    try:
        result = action(celery_app(), *args, **kwargs)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    audit.record(result.action, result.target, "ok" if result.ok else "failed", **result.summary())
    if result.throttled:
        raise ApiError(429, f"Not sent: {result.error}.")
    if result.error is not None:
        raise ApiError(503, f"The broker is unreachable: {result.error}")
    return result


def known_worker(hostname: str) -> str:
    """`hostname` if this monitor knows it and it is online; else 404 (unknown) or 409 (offline)."""
    worker = Worker.select().where(Worker.hostname == hostname[:255], visible()).first()
    if worker is None:
        raise ApiError(404, f"Unknown worker '{hostname[:255]}'")
    if not worker.online:
        raise ApiError(409, f"Worker '{hostname}' is offline: nothing would receive the command.")
    return hostname


def reply_of(result: control.ControlResult, failure: str) -> str:
    """The acknowledging worker's text; 403 with the worker's error, 409 when no worker answered."""
    if result.acknowledged:
        return result.acknowledged[0].message
    if result.errored:
        raise ApiError(403, f"{failure}: {result.errored[0].message}")
    raise ApiError(409, f"{failure}: no worker answered within the control timeout (offline or busy?).")


# -- worker controls (admin) --------------------------------------------------------------------------------

@bp.post("/api/worker/shutdown/<hostname>")
@requires("admin")
def shutdown(hostname: str) -> Response:
    run(control.shutdown, known_worker(hostname))
    return jsonify({"message": "Shutting down!"})


@bp.post("/api/worker/pool/restart/<hostname>")
@requires("admin")
def pool_restart(hostname: str) -> Response:
    result = run(control.pool_restart, known_worker(hostname))
    reply_of(result, f"Failed to restart the '{hostname}' pool")
    return jsonify({"message": f"Restarting '{hostname}' worker's pool"})


@bp.post("/api/worker/pool/grow/<hostname>")
@requires("admin")
def pool_grow(hostname: str) -> Response:
    n = params.integer("n", 1, 1, 10_000)
    result = run(control.pool_grow, known_worker(hostname), n)
    reply_of(result, f"Failed to grow '{hostname}' worker's pool")
    return jsonify({"message": f"Growing '{hostname}' worker's pool by {n}"})


@bp.post("/api/worker/pool/shrink/<hostname>")
@requires("admin")
def pool_shrink(hostname: str) -> Response:
    n = params.integer("n", 1, 1, 10_000)
    result = run(control.pool_shrink, known_worker(hostname), n)
    reply_of(result, f"Failed to shrink '{hostname}' worker's pool")
    return jsonify({"message": f"Shrinking '{hostname}' worker's pool by {n}"})


@bp.post("/api/worker/pool/autoscale/<hostname>")
@requires("admin")
def autoscale(hostname: str) -> Response:
    low, high = params.integer("min", None, 0, 10_000), params.integer("max", None, 1, 10_000)
    if low is None or high is None:
        raise ApiError(400, "Give both 'min' and 'max' (whole numbers of pool processes).")
    result = run(control.autoscale, known_worker(hostname), high, low)
    reply_of(result, f"Failed to autoscale '{hostname}' worker")
    return jsonify({"message": f"Autoscaling '{hostname}' worker (min={low}, max={high})"})


@bp.post("/api/worker/queue/add-consumer/<hostname>")
@requires("admin")
def add_consumer(hostname: str) -> Response:
    queue = _required("queue")
    result = run(control.add_consumer, known_worker(hostname), queue)
    return jsonify({"message": reply_of(result, f"Failed to add '{queue}' consumer to '{hostname}' worker")})


@bp.post("/api/worker/queue/cancel-consumer/<hostname>")
@requires("admin")
def cancel_consumer(hostname: str) -> Response:
    queue = _required("queue")
    result = run(control.cancel_consumer, known_worker(hostname), queue)
    return jsonify({"message": reply_of(result, f"Failed to cancel '{queue}' consumer from '{hostname}' worker")})


# -- task controls (operator) -------------------------------------------------------------------------------

@bp.post("/api/task/revoke/<task_id>")
@requires("operator")
def revoke(task_id: str) -> Response:
    """Revoke on every worker (Flower waits for no reply; we wait up to the control timeout to audit them)."""
    terminate = params.flag("terminate")
    signal = params.text("signal", max_length=40) or "SIGTERM"
    run(control.revoke, [task_id], terminate=terminate, signal=signal)
    return jsonify({"message": f"Revoked '{task_id}'"})


@bp.post("/api/task/timeout/<name>")
@requires("operator")
def time_limit(name: str) -> Response:
    workers = _destination(name)
    soft = params.number("soft", None, 0, 1e9)
    hard = params.number("hard", None, 0, 1e9)
    result = run(control.time_limit, name, soft=soft or None, hard=hard or None, workers=workers)
    return jsonify({"message": reply_of(result, f"Failed to set timeouts of '{name}'")})


@bp.post("/api/task/rate-limit/<name>")
@requires("operator")
def rate_limit(name: str) -> Response:
    workers = _destination(name)
    rate = _required("ratelimit")
    result = run(control.rate_limit, name, rate, workers=workers)
    return jsonify({"message": reply_of(result, f"Failed to set rate limit of '{name}'")})


def _required(name: str) -> str:
    value = params.text(name, max_length=255)
    if not value:
        raise ApiError(400, f"'{name}' is required.")
    return value


def _destination(task_name: str) -> list[str] | None:
    """Flower's `workername` (optional here: none means every worker), after checking the task is known."""
    if not known_task(task_name):
        raise ApiError(404, f"Unknown task '{task_name[:255]}'")
    workername = params.text("workername", max_length=255)
    return [known_worker(workername)] if workername else None


def known_task(name: str) -> bool:
    """Registered in the monitored app (Flower's test), stored, or registered by a worker that answered."""
    if name in celery_app().tasks or Task.select(Task.id).where(Task.name == name[:255]).exists():
        return True
    for inspection in WorkerInspection.select(WorkerInspection.data):
        try:
            registered = (json.loads(inspection.data) if inspection.data else {}).get("registered") or []
        except (ValueError, AttributeError):
            continue
        if any(isinstance(entry, str) and entry.split(" [")[0] == name for entry in registered):
            return True
    return False
