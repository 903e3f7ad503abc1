"""The OpenAPI 3 document of every route under `/api/` (and `/healthcheck`), served at
`/api/v1/openapi.json`. Kept true by tests/integration/test_api_openapi.py: every API route of the app is in
it, and real responses validate against its schemas."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from webui.api.task_dicts import FIELDS

bp = Blueprint("api_openapi", __name__)

NUM = {"type": ["number", "null"]}
STR = {"type": ["string", "null"]}
INT = {"type": ["integer", "null"]}
TEXT = {"text/plain": {"schema": {"type": "string"}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, extra: bool = True) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or list(properties),
            "additionalProperties": extra}


TASK = _obj({**{f: STR for f in FIELDS},
             **{f: NUM for f in ("received", "sent", "started", "rejected", "succeeded", "failed", "retried",
                                 "revoked", "timestamp", "runtime")},
             "uuid": {"type": "string"}, "state": {"type": "string"}, "retries": {"type": "integer"},
             "clock": INT, "children": {"type": "array", "items": {"type": "string"}}})
GAP = _obj({"started_at": {"type": "number"}, "ended_at": NUM, "kind": {"type": "string"},
            "reason": {"type": "string"}, "events_lost": INT})
WORKER = _obj({"hostname": {"type": "string"}, "online": {"type": "boolean"}, "status_changed_at": NUM,
               "offline_reason": STR, "first_seen": {"type": "number"}, "last_seen": {"type": "number"},
               "last_heartbeat": NUM, "pid": INT, "sw_ident": STR, "sw_ver": STR, "sw_sys": STR,
               "processed": INT, "active": INT, "loadavg": {"type": "array"}, "clock_skew": NUM,
               "pool": {"type": "string"}, "concurrency": {}, "queues": {"type": "array", "items": {"type": "string"}},
               "inspected_at": NUM})
# Ours beside Flower's fields: the queue, and when reconciliation lost track of the task (null: it did not).
TASK_LISTED = {"allOf": [_ref("FlowerTask"), _obj({"queue": STR, "unknown_since": NUM})]}
PROMISE = {**_obj({"every": {"type": "number"}, "promised_at": NUM, "last_sign_at": {"type": "number"},
                   "silent_seconds": {"type": "number"}, "grace_seconds": {"type": "number"},
                   "broken": {"type": "boolean"}, "text": {"type": "string"}}), "type": ["object", "null"]}
TASK_DETAIL = {"allOf": [_ref("Task"), _obj({
    "executions": {"type": "integer"}, "last_progress_at": NUM, "progress_promise": PROMISE})]}
QUEUE = _obj({"name": {"type": "string"}, "depth": INT, "ready": INT, "unacked": INT, "consumers": INT,
              "oldest_age": NUM, "sampled_at": {"type": "number"},
              "workers": {"type": "array", "items": {"type": "string"}}, "transport": {"type": "string"}})
BEAT_FIRE = _obj({"at": {"type": "number"}, "task_uuid": STR, "sender": STR, "state": STR})
BEAT_ENTRY = _obj({
    "id": {"type": "integer"}, "source": {"type": "string"}, "name": {"type": "string"}, "task": {"type": "string"},
    "schedule": {"type": "object"}, "schedule_text": {"type": "string"}, "timezone": STR,
    "args": {"type": "array"}, "kwargs": {"type": "object"}, "queue": STR, "options": {"type": "object"},
    "enabled": {"type": "boolean"}, "description": STR, "first_seen": {"type": "number"},
    "changed_at": {"type": "number"}, "removed_at": NUM,
    "scheduler": _obj({"last_run_at": NUM, "total_run_count": INT, "next_due_at": NUM}),
    "state": {"type": "string", "enum": ["on_time", "late", "missed", "waiting", "disabled", "removed", "unknown",
                                         "done"]},
    "grace": {"type": "number"}, "period": NUM, "last_fired_at": NUM, "last_fired_from": STR, "next_due_at": NUM,
    "overdue_by": NUM, "missed_count": {"type": "integer"}, "drift": NUM, "too_often": STR, "last_outcome": STR,
    "fires": {"type": "array", "items": BEAT_FIRE}})
INCIDENT = _obj({
    "id": {"type": "integer"}, "rule_id": {"type": "integer"}, "rule": {"type": "string"},
    "subject": {"type": "string"}, "scope": STR, "state": {"type": "string", "enum": ["open", "resolved"]},
    "severity": {"type": "string"}, "summary": {"type": "string"}, "detail": {"type": "object"}, "link": STR,
    "opened_at": {"type": "number"}, "last_seen_at": {"type": "number"}, "resolved_at": NUM, "acked_at": NUM,
    "acked_by": STR, "silenced_until": NUM, "silenced_by": STR, "last_notified_at": NUM,
    "notifications": {"type": "integer"}})
RULE_FIELDS = {
    "name": {"type": "string"}, "detector": {"type": "string"},
    "scope": {"type": "array", "items": {"type": "string"}}, "params": {"type": "object"},
    "severity": {"type": "string", "enum": ["info", "warning", "critical"]},
    "channels": {"type": "array", "items": {"type": "string"}}, "enabled": {"type": "boolean"},
    "consecutive": {"type": "integer", "minimum": 1, "maximum": 100}, "renotify_minutes": NUM}
ALERT_RULE = _obj({"id": {"type": "integer"}, **RULE_FIELDS, "managed_by": {"type": "string"},
                   "created_at": {"type": "number"}, "updated_at": {"type": "number"},
                   "open_incidents": {"type": "integer"}})
SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": {"type": "string"}}),
    "Message": _obj({"message": {"type": "string"}}),
    "FlowerTask": TASK, "Task": TASK_LISTED, "TaskDetail": TASK_DETAIL,
    "Gap": GAP, "Worker": WORKER, "Queue": QUEUE, "BeatEntry": BEAT_ENTRY, "Incident": INCIDENT,
    "AlertRule": ALERT_RULE,
    "Sent": _obj({"task-id": {"type": "string"}, "state": {"type": "string"}}, ["task-id"]),
    "Result": _obj({"task-id": {"type": "string"}, "state": {"type": "string"}, "result": {},
                    "traceback": STR}, ["task-id", "state"]),
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = _json(_ref("Error"), "Refused: the reason is in `error`")


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {400: "A bad parameter", 401: "No login or token", 403: "Role too low, read-only, or the worker "
               "refused", 404: "Unknown task, worker or queue", 405: "Wrong method", 409: "The worker is "
               "offline or did not answer", 503: "The broker, result backend or database is unreachable"}
    return {str(c): {**ERROR, "description": reasons[c]} for c in (401, *codes)}


def _param(name: str, schema: dict[str, Any], description: str = "", where: str = "query",
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


def _path(name: str) -> dict[str, Any]:
    return _param(name, {"type": "string", "minLength": 1}, where="path")


def _op(summary: str, response: dict[str, Any], *, parameters: list[dict[str, Any]] | None = None,
        errors: tuple[int, ...] = (), role: str = "viewer", body: dict[str, Any] | None = None,
        tag: str = "flower") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "parameters": parameters or [],
                          "responses": {"200": response, **_errors(*errors)}, "x-role": role}
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return op


def _form(*fields: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Flower reads these from the query string or a form body; the document lists them as query ones."""
    return [_param(name, schema) for name, schema in fields]


BOOL = {"type": "string", "enum": ["0", "1", "true", "false"]}
TASK_BODY = {"type": "object", "properties": {
    "args": {"type": "array"}, "kwargs": {"type": "object"}, "countdown": {"type": "number"},
    "eta": {"type": "string"}, "expires": {}, "queue": {"type": "string"}, "priority": {"type": "integer"}}}
FILTERS = [_param(k, {"type": "string"}, d) for k, d in (
    ("state", "a state; repeat or comma-separate for several"), ("name", "task name; repeatable"),
    ("worker", "worker hostname; repeatable"), ("queue", "queue; repeatable"),
    ("time_field", "received, started or finished"), ("from", "ISO time or epoch seconds"),
    ("to", "ISO time or epoch seconds"), ("range", "15m, 1h, 6h, 24h, 7d or 30d"),
    ("runtime_min", "seconds"), ("runtime_max", "seconds"), ("q", "text in args, kwargs, result, exception"),
    ("sort", "newest, oldest, slowest or fastest"), ("cursor", "the previous page's next_cursor"),
    ("tz", "minutes east of UTC for times without a zone"))] + [
    _param("limit", {"type": "integer", "minimum": 1, "maximum": 500})]


def _paths() -> dict[str, Any]:
    worker = _path("hostname")
    worker_ops = {
        "/api/worker/shutdown/{hostname}": ("Shut the worker down (warm)", []),
        "/api/worker/pool/restart/{hostname}": ("Restart the worker's pool", []),
        "/api/worker/pool/grow/{hostname}": ("Add pool processes", _form(("n", {"type": "integer"}))),
        "/api/worker/pool/shrink/{hostname}": ("Remove pool processes", _form(("n", {"type": "integer"}))),
        "/api/worker/pool/autoscale/{hostname}": ("Set autoscale bounds",
                                                  _form(("min", {"type": "integer"}), ("max", {"type": "integer"}))),
        "/api/worker/queue/add-consumer/{hostname}": ("Consume a queue too", _form(("queue", {"type": "string"}))),
        "/api/worker/queue/cancel-consumer/{hostname}": ("Stop consuming a queue",
                                                         _form(("queue", {"type": "string"}))),
    }
    paths: dict[str, Any] = {
        path: {"post": _op(summary, _json(_ref("Message")), parameters=[worker, *extra],
                           errors=(400, 403, 404, 409, 503), role="admin")}
        for path, (summary, extra) in worker_ops.items()}
    name, task_id = _path("name"), _path("task_id")
    paths.update({
        "/healthcheck": {"get": {"summary": "OK when the store is writable and a collector connected",
                                 "tags": ["flower"], "security": [], "responses": {
                                     "200": {"description": "OK", "content": TEXT},
                                     "503": {"description": "Unhealthy, with why", "content": TEXT}}}},
        "/api/workers": {"get": _op(
            "Workers' latest inspection (`status=1`: online flags)",
            _json({"type": "object", "additionalProperties": {"oneOf": [{"type": "boolean"}, _obj(
                {"timestamp": {"type": "number"}}, ["timestamp"])]}}),
            parameters=_form(("refresh", BOOL), ("status", BOOL), ("workername", {"type": "string"})),
            errors=(400, 404))},
        "/api/tasks": {"get": _op(
            "Tasks as an ordered object {uuid: task}",
            _json({"type": "object", "additionalProperties": _ref("FlowerTask")}),
            parameters=_form(("limit", {"type": "integer", "minimum": 1, "maximum": 10000}),
                             ("offset", {"type": "integer", "minimum": 0, "maximum": 9999}),
                             ("sort_by", {"type": "string", "enum": ["name", "state", "received", "started",
                                                                     "-name", "-state", "-received", "-started"]}),
                             ("workername", {"type": "string"}), ("taskname", {"type": "string"}),
                             ("state", {"type": "string"}), ("received_start", {"type": "string"}),
                             ("received_end", {"type": "string"}), ("search", {"type": "string"})),
            errors=(400,))},
        "/api/task/types": {"get": _op("Task names seen or registered", _json(_obj(
            {"task-types": {"type": "array", "items": {"type": "string"}}})))},
        "/api/task/info/{task_id}": {"get": _op("One task", _json(_ref("FlowerTask")), parameters=[task_id],
                                                errors=(404,))},
        "/api/task/result/{task_id}": {"get": _op(
            "The task's state and result from the result backend", _json(_ref("Result")),
            parameters=[task_id, _param("timeout", {"type": "number", "minimum": 0, "maximum": 60})],
            errors=(400, 503))},
        "/api/queues/length": {"get": _op("Messages waiting per queue", _json(_obj({"active_queues": {
            "type": "array", "items": _obj({"name": {"type": "string"}, "messages": INT})}})))},
        "/api/task/apply/{name}": {"post": _op(
            "Send the task and wait for its result (at most `timeout`, default 30 s)", _json(_ref("Result")),
            parameters=[name, _param("timeout", {"type": "number", "minimum": 0, "maximum": 60})],
            errors=(400, 403, 404, 503), role="operator", body=TASK_BODY)},
        "/api/task/async-apply/{name}": {"post": _op(
            "Send a task registered in the monitored app", _json(_ref("Sent")), parameters=[name],
            errors=(400, 403, 404, 503), role="operator", body=TASK_BODY)},
        "/api/task/send-task/{name}": {"post": _op(
            "Send a task by name", _json(_ref("Sent")), parameters=[name], errors=(400, 403, 503),
            role="operator", body=TASK_BODY)},
        "/api/task/abort/{task_id}": {"post": _op(
            "Mark an AbortableTask aborted", _json(_ref("Message")), parameters=[task_id],
            errors=(403, 503), role="operator")},
        "/api/task/revoke/{task_id}": {"post": _op(
            "Revoke (and with terminate, kill) a task", _json(_ref("Message")),
            parameters=[task_id, *_form(("terminate", BOOL), ("signal", {"type": "string"}))],
            errors=(400, 403, 503), role="operator")},
        "/api/task/timeout/{name}": {"post": _op(
            "Set a task's soft and hard time limits", _json(_ref("Message")),
            parameters=[name, *_form(("workername", {"type": "string"}), ("soft", {"type": "number"}),
                                     ("hard", {"type": "number"}))],
            errors=(400, 403, 404, 409, 503), role="operator")},
        "/api/task/rate-limit/{name}": {"post": _op(
            "Set a task's rate limit", _json(_ref("Message")),
            parameters=[name, *_form(("workername", {"type": "string"}), ("ratelimit", {"type": "string"}))],
            errors=(400, 403, 404, 409, 503), role="operator")},
    })
    paths.update(_v1_paths())
    paths.update(_alert_paths())
    paths.update(_beat_control_paths())
    return paths


def _beat_control_paths() -> dict[str, Any]:
    actions = ["run", "pause", "resume", "skip"]
    done = _obj({"action": {"type": "string", "enum": actions}, "entry_id": {"type": "integer"},
                 "name": {"type": "string"}, "source": {"type": "string"}, "enabled": {"type": "boolean"},
                 "task_id": STR, "skipped": NUM, "next_run": NUM})
    action = _param("action", {"type": "string", "enum": actions},
                    "run: send its task now as beat would (`task_id`: the new task); pause, resume: in its "
                    "source (django-celery-beat, RedBeat); skip: its next run (`skipped`: that slot, "
                    "`next_run`: when beat sends it instead)", where="path")
    return {"/api/v1/beat/{entry_id}/{action}": {"post": _op(
        "A beat control: run now, pause, resume or skip the next run", _json(done),
        parameters=[_path("entry_id"), action], errors=(403, 404, 409, 503), role="operator", tag="v1")}}


def _alert_paths() -> dict[str, Any]:
    def v1(summary: str, schema: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return _op(summary, _json(schema), tag="v1", **kwargs)

    incident_id, rule_id = _path("incident_id"), _path("rule_id")
    rule_body = {"type": "object", "properties": RULE_FIELDS, "additionalProperties": False}
    created = v1("Create a rule", _ref("AlertRule"), body={**rule_body, "required": ["name", "detector"]},
                 errors=(400, 403, 409), role="admin")
    created["responses"]["201"] = created["responses"].pop("200")
    event = _obj({"at": {"type": "number"}, "kind": {"type": "string"}, "actor": STR, "detail": STR})
    notification = _obj({"id": {"type": "integer"}, "channel_id": {"type": "integer"}, "kind": {"type": "string"},
                         "created_at": {"type": "number"}, "attempts": {"type": "integer"},
                         "next_attempt_at": {"type": "number"}, "sent_at": NUM, "failed_at": NUM,
                         "last_error": STR})
    act = {"errors": (403, 404, 409), "role": "operator", "parameters": [incident_id]}
    return {
        "/api/v1/incidents": {"get": v1("Incidents, open first, newest first", _obj({
            "incidents": {"type": "array", "items": _ref("Incident")}, "next_before": INT}),
            parameters=[_param("state", {"type": "string", "enum": ["open", "resolved"]}),
                        _param("rule", {"type": "integer", "minimum": 1}),
                        _param("before", {"type": "integer", "minimum": 1}),
                        _param("limit", {"type": "integer", "minimum": 1, "maximum": 500})], errors=(400,))},
        "/api/v1/incidents/{incident_id}": {"get": v1("An incident, its timeline and its notifications", {
            "allOf": [_ref("Incident"), _obj({"timeline": {"type": "array", "items": event},
                                              "notifications": {"type": "array", "items": notification}})]},
            parameters=[incident_id], errors=(404,))},
        "/api/v1/incidents/{incident_id}/ack": {"post": v1("Acknowledge: no more reminders", _ref("Incident"),
                                                           **act)},
        "/api/v1/incidents/{incident_id}/silence": {"post": v1(
            "Silence for a number of minutes", _ref("Incident"),
            body=_obj({"minutes": {"type": "number", "minimum": 1, "maximum": 10080}}),
            **{**act, "errors": (400, 403, 404, 409)})},
        "/api/v1/incidents/{incident_id}/unsilence": {"post": v1("End a silence", _ref("Incident"), **act)},
        "/api/v1/detectors": {"get": v1("The detectors rules can use, with their parameters", _obj({
            "detectors": {"type": "array", "items": _obj({
                "name": {"type": "string"}, "title": {"type": "string"}, "scope": {"type": "string"},
                "description": {"type": "string"}, "params": {"type": "object"}})}}))},
        "/api/v1/alert-rules": {
            "get": v1("Alert rules with their open incidents", _obj({
                "rules": {"type": "array", "items": _ref("AlertRule")}})),
            "post": created},
        "/api/v1/alert-rules/{rule_id}": {
            "get": v1("One alert rule", _ref("AlertRule"), parameters=[rule_id], errors=(404,)),
            "put": v1("Change a rule (fields not given are kept)", _ref("AlertRule"), parameters=[rule_id],
                      body=rule_body, errors=(400, 403, 404, 409), role="admin"),
            "delete": v1("Delete a rule (its incidents are kept)", _ref("Message"), parameters=[rule_id],
                         errors=(403, 404, 409), role="admin")},
    }


def _v1_paths() -> dict[str, Any]:
    def v1(summary: str, schema: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {"get": _op(summary, _json(schema), tag="v1", **kwargs)}

    def array(item: dict[str, Any]) -> dict[str, Any]:
        return {"type": "array", "items": item}

    return {
        "/api/v1/openapi.json": v1("This document", {"type": "object"}),
        "/api/v1/tasks": v1("Tasks with the page's filters, keyset-paged", _obj(
            {"tasks": array(_ref("Task")), "next_cursor": STR, "partial": {"type": "boolean"}}),
            parameters=FILTERS, errors=(400,)),
        "/api/v1/tasks/count": v1("How many tasks the filters match, counted up to 10,000 in bounded time", _obj(
            {"count": {"type": "integer"}, "exact": {"type": "boolean"}, "capped": {"type": "boolean"},
             "label": {"type": "string"}}), parameters=FILTERS, errors=(400,)),
        "/api/v1/tasks/{task_id}": v1("One task, with its promise of progress", _ref("TaskDetail"),
                                      parameters=[_path("task_id")],
                                      errors=(404,)),
        "/api/v1/tasks/{task_id}/events": v1("A task's events and the gaps during its life", _obj(
            {"uuid": {"type": "string"}, "events": array(_obj({
                "seq": {"type": "integer"}, "type": {"type": "string"}, "timestamp": NUM,
                "received": {"type": "number"}, "hostname": STR, "pid": INT, "source": STR,
                "data": {"type": "object"}})), "gaps": array(_ref("Gap"))}),
            parameters=[_path("task_id")], errors=(404,)),
        "/api/v1/workers": v1("Workers, online first", _obj({"workers": array(_ref("Worker"))})),
        "/api/v1/workers/{hostname}": v1("A worker, its inspection and its online/offline history", {
            "allOf": [_ref("Worker"), _obj({"inspection": {"type": "object"}, "inspection_error": STR,
                                            "transitions": array(_obj({"online": {"type": "boolean"},
                                                                        "at": {"type": "number"},
                                                                        "reason": {"type": "string"}}))})]},
            parameters=[_path("hostname")], errors=(404,)),
        "/api/v1/queues": v1("Queues sampled in the last hour", _obj({"queues": array(_ref("Queue"))})),
        "/api/v1/queues/{name}": v1("A queue and its depth history", {
            "allOf": [_ref("Queue"), _obj({"window": {"type": "number"}, "history": array(
                _obj({"at": {"type": "number"}, "depth": INT}))})]},
            parameters=[_path("name"), _param("window", {"type": "number", "minimum": 60, "maximum": 604800})],
            errors=(400, 404)),
        "/api/v1/broker": v1("What the broker says about itself", _obj({
            "url": {"type": "string"}, "transport": {"type": "string"}, "reachable": {"type": "boolean"},
            "facts": array(_obj({"label": {"type": "string"}, "value": {"type": "string"}})),
            "databases": array(_obj({"db": {"type": "string"}, "keys": {"type": "integer"},
                                     "expires": {"type": "integer"}})),
            "notes": array({"type": "string"}), "fetched_at": {"type": "number"}})),
        "/api/v1/beat": v1("Beat entries judged on time / late / missed, beat's liveness, the sources read", _obj({
            "as_of": NUM, "stale": {"type": "boolean"},
            "liveness": _obj({"state": {"type": "string", "enum": ["up", "down", "unknown"]},
                              "reason": {"type": "string"}, "last_fire_at": NUM}),
            "pong_nodes": array({"type": "string"}), "sources": {"type": "object"},
            "entries": array(_ref("BeatEntry"))}),
            parameters=[_param("removed", {"type": "string", "enum": ["0", "1", "true", "false"]},
                               "also list entries their source no longer has")]),
        "/api/v1/beat/{entry_id}": v1("A beat entry and its fires, newest first", {
            "allOf": [_ref("BeatEntry"), _obj({"as_of": NUM, "stale": {"type": "boolean"}})]},
            parameters=[_path("entry_id"), _param("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
            errors=(400, 404)),
        "/api/v1/audit": v1("The audit log, newest first (admins)", _obj({
            "entries": array(_obj({"id": {"type": "integer"}, "at": {"type": "number"},
                                   "actor": {"type": "string"}, "provider": {"type": "string"}, "role": STR,
                                   "action": {"type": "string"}, "target": STR, "address": STR,
                                   "result": {"type": "string"}, "detail": STR})),
            "next_before": INT}),
            parameters=[_param("before", {"type": "integer", "minimum": 1})], errors=(400, 403), role="admin"),
        "/api/v1/gaps": v1("When the collector could not see events", _obj({"gaps": array(_ref("Gap"))}),
                           parameters=[_param("limit", {"type": "integer", "minimum": 1, "maximum": 500})],
                           errors=(400,)),
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Celery WebUI API", "version": "1",
                 "description": "Flower's API (same paths, parameters and shapes) and ours under /api/v1. "
                                "`x-role` is the least role a route needs. See docs/api.md."},
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "token": {"type": "http", "scheme": "bearer", "description": "an API token, cwu_…"},
            "basic": {"type": "http", "scheme": "basic"}}},
        "security": [{"token": []}, {"basic": []}],
        "paths": _paths(),
    }


@bp.get("/api/v1/openapi.json")
def openapi_json() -> Response:
    return jsonify(document())
