"""Flower's routes that send tasks and read the result backend: `/api/task/apply|async-apply|send-task/<name>`
(operator), `/api/task/result/<id>` (viewer), `/api/task/abort/<id>` (operator).

`apply` blocks until the task finishes, as Flower's does, but never longer than `APPLY_TIMEOUT` seconds (or
the request's `timeout`, at most `MAX_TIMEOUT`): then it answers the state so far with `"result": null`, and
`/api/task/result/<id>` tells the rest. Sending options are Flower's (`eta` as `%Y-%m-%d %H:%M:%S.%f` or ISO,
`countdown`, `expires`, …) from a fixed list: a JSON body cannot pass a serializer or a producer.
"""
from __future__ import annotations

import datetime
import json
from typing import Any

import redis
from celery import Celery, states
from celery.backends.base import DisabledBackend
from celery.contrib.abortable import AbortableAsyncResult
from celery.exceptions import TimeoutError as ResultTimeout
from celery.result import AsyncResult
from flask import Blueprint, Response, current_app, jsonify
from kombu.exceptions import OperationalError as BrokerError

from webui import audit
from webui.api import params
from webui.api.errors import ApiError
from webui.auth.access import requires
from webui.request_lane import outside_lane

bp = Blueprint("flower_tasks", __name__)

APPLY_TIMEOUT = 30.0
MAX_TIMEOUT = 60.0
OPTIONS = {"countdown", "eta", "expires", "queue", "routing_key", "exchange", "priority", "task_id",
           "time_limit", "soft_time_limit"}
UNREACHABLE = (BrokerError, redis.RedisError, OSError)


def celery_app() -> Celery:
    return current_app.extensions["webui_celery_app"]


@bp.post("/api/task/apply/<name>")
@requires("operator")
def apply(name: str) -> Response:
    timeout = params.number("timeout", APPLY_TIMEOUT, 0, MAX_TIMEOUT)
    _need_backend()
    result = _send(name, registered=True)
    response: dict[str, Any] = {"task-id": result.id}
    try:
        result.get(timeout=timeout, propagate=False)
    except ResultTimeout:
        pass  # still running: the state so far, and /api/task/result for the rest
    except UNREACHABLE as exc:
        raise ApiError(503, f"The result backend is unreachable: {exc}") from None
    response.update(_outcome(result, always=True))
    return jsonify(response)


@bp.post("/api/task/async-apply/<name>")
@requires("operator")
def async_apply(name: str) -> Response:
    return jsonify(_sent(_send(name, registered=True)))


@bp.post("/api/task/send-task/<name>")
@requires("operator")
def send_task(name: str) -> Response:
    return jsonify(_sent(_send(name, registered=False)))


@bp.get("/api/task/result/<task_id>")
@outside_lane
def result(task_id: str) -> Response:
    """The task's state from the result backend, and its result (and traceback) once it is ready."""
    timeout = params.number("timeout", None, 0, MAX_TIMEOUT)
    _need_backend()
    found = AsyncResult(task_id[:255], app=celery_app())
    try:
        if timeout:
            found.get(timeout=timeout, propagate=False)
    except ResultTimeout:
        pass
    except UNREACHABLE as exc:
        raise ApiError(503, f"The result backend is unreachable: {exc}") from None
    return jsonify({"task-id": found.id, **_outcome(found)})


@bp.post("/api/task/abort/<task_id>")
@requires("operator")
def abort(task_id: str) -> Response:
    """Mark the task aborted in the result backend: only an `AbortableTask` that checks `is_aborted()` stops."""
    _need_backend()
    try:
        AbortableAsyncResult(task_id[:255], app=celery_app()).abort()
    except UNREACHABLE as exc:
        audit.record("abort", task_id, "failed", error=str(exc))
        raise ApiError(503, f"The result backend is unreachable: {exc}") from None
    audit.record("abort", task_id, "ok")
    return jsonify({"message": f"Aborted '{task_id}'"})


def _need_backend() -> None:
    if isinstance(celery_app().backend, DisabledBackend):
        raise ApiError(503, "No result backend is configured for the monitored app (result_backend).")


def _send(name: str, *, registered: bool) -> AsyncResult:
    """Send `name` with the body's args, kwargs and options; audited (the task id, not its arguments)."""
    app = celery_app()
    if registered and name not in app.tasks:
        raise ApiError(404, f"Unknown task '{name[:255]}' (not registered in the monitored app: use "
                            "/api/task/send-task, which needs no task code)")
    args, kwargs, options = _task_arguments(params.json_body())
    try:
        sent = app.tasks[name].apply_async(args, kwargs, **options) if registered else \
            app.send_task(name, args=args, kwargs=kwargs, **options)
    except UNREACHABLE as exc:
        audit.record("send-task", name, "failed", error=str(exc))
        raise ApiError(503, f"The broker is unreachable: {exc}") from None
    audit.record("apply" if registered else "send-task", name, "ok", task_id=sent.id,
                 options=sorted(options))
    return sent


def _sent(sent: AsyncResult) -> dict[str, Any]:
    answer: dict[str, Any] = {"task-id": sent.id}
    if not isinstance(celery_app().backend, DisabledBackend):
        try:
            answer["state"] = sent.state
        except UNREACHABLE:
            pass  # sent; the backend's state is unknown for now
    return answer


def _outcome(found: AsyncResult, *, always: bool = False) -> dict[str, Any]:
    try:
        state = found.state
        answer: dict[str, Any] = {"state": state}
        if found.ready():
            answer["result"] = _safe(found.result)
            if state == states.FAILURE:
                answer["traceback"] = found.traceback
        elif always:
            answer["result"] = None
    except UNREACHABLE as exc:
        raise ApiError(503, f"The result backend is unreachable: {exc}") from None
    return answer


def _safe(value: Any) -> Any:
    """The result as JSON if it is JSON, else its repr (as Flower's `safe_result`)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _task_arguments(body: dict[str, Any]) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    args = body.get("args", [])
    kwargs = body.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ApiError(400, "'args' must be a JSON array and 'kwargs' a JSON object.")
    options = {k: v for k, v in body.items() if k not in ("args", "kwargs")}
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ApiError(400, f"Unknown option(s) {', '.join(unknown)[:200]}; the options are "
                            f"{', '.join(sorted(OPTIONS))}.")
    for key in ("countdown", "time_limit", "soft_time_limit", "priority"):
        if key in options and (isinstance(options[key], bool) or not isinstance(options[key], (int, float))):
            raise ApiError(400, f"'{key}' must be a number.")
    for key in ("queue", "routing_key", "exchange", "task_id"):
        if key in options and (not isinstance(options[key], str) or not 0 < len(options[key]) <= 255):
            raise ApiError(400, f"'{key}' must be a text of 1 to 255 characters.")
    if "eta" in options:
        options["eta"] = _moment(options["eta"], "eta")
    if "expires" in options and not isinstance(options["expires"], (int, float)):
        options["expires"] = _moment(options["expires"], "expires")
    return args, kwargs, options


def _moment(value: Any, key: str) -> datetime.datetime:
    if isinstance(value, str):
        for parse in (lambda v: datetime.datetime.strptime(v, "%Y-%m-%d %H:%M:%S.%f"),
                      datetime.datetime.fromisoformat):
            try:
                return parse(value)
            except ValueError:
                continue
    raise ApiError(400, f"'{key}' must be a time like 2026-12-01 09:30:00.000000; got {str(value)[:60]!r}.")
