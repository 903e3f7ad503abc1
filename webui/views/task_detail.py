"""`/task/<id>`: everything known of one task: facts, outcome, every event by attempt, and its workflow."""
from __future__ import annotations

import re
import time
from typing import Any

from flask import Blueprint, current_app, render_template
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import PathConverter

from webui import progress_promise
from webui.alerts import rules
from webui.store import task_queries
from webui.store.models import Task

bp = Blueprint("task", __name__)


class TaskIdConverter(PathConverter):
    """Like `path`, but it matches newlines too, so such an id gets our 400 rather than a bare 404."""

    regex = r"[^/][\s\S]*?"


@bp.record_once
def _add_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault("task_id", TaskIdConverter)


MAX_TASK_ID_LENGTH = 255  # the task.uuid column
_RUNNING = ("PENDING", "RECEIVED", "STARTED", "RETRY")  # states whose logs may still grow
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@bp.get("/task/<task_id:task_id>")
def detail(task_id: str) -> tuple[str, int] | str:
    """The task page; 400 for an id no task can have, 404 for one this monitor never saw."""
    problem = _invalid_id(task_id)
    if problem:
        return render_template("task_detail.html", task=None, task_id=None, problem=problem,
                               page_title="Bad task id"), 400
    task = task_queries.task_by_uuid(task_id)
    if task is None:
        return render_template("task_detail.html", task=None, task_id=task_id, problem=None,
                               page_title=f"Task {task_id[:8]}"), 404
    events = task_queries.task_timeline(task)
    start, end = task_queries.task_lifetime(task, events)
    attempts = task_queries.group_attempts(events)
    gaps = task_queries.gaps_during(start, end)
    return render_template(
        "task_detail.html",
        task=task,
        task_id=task.uuid,
        problem=None,
        page_title=f"Task {task.uuid[:8]}",
        attempts=attempts,
        timeline=list(zip(attempts, task_queries.place_gaps(attempts, gaps), strict=True)),
        event_count=len(events),
        pruned_events=max(task.event_count - len(events), 0),  # older events deleted by retention
        origin=min((e.timestamp for e in events if e.timestamp is not None), default=None),
        gaps=gaps,
        workflow=task_queries.workflow(task),
        facts=_facts(task),
        worker_pages="workers.detail" in current_app.view_functions,
        logs=_logs(task),
    )


@bp.get("/task/<task_id:task_id>/logs")
def logs(task_id: str) -> tuple[str, int] | str:
    """The logs panel alone: what the task page's live updates fetch while the task runs."""
    task = None if _invalid_id(task_id) else task_queries.task_by_uuid(task_id)
    if task is None:
        return "", 404
    return render_template("task_detail/logs.html", task=task, logs=_logs(task))


def _logs(task: Task) -> dict[str, Any]:
    """The captured lines by attempt, each with its offset from the attempt's first line; `live` while the
    task runs and the monitor reads the companion's stream (the panel then refreshes itself on every `tasks`
    change): without the companion no line can come, and the page shows no empty panel."""
    attempts = []
    for number, lines in task_queries.task_logs(task).items():
        first = next((line.at for line in lines if line.at is not None), None)
        shown = [(line, None if line.at is None or first is None else line.at - first) for line in lines]
        attempts.append((number, shown, sum(1 for line in lines if line.omitted is None)))
    reading = bool(getattr(current_app.config.get("WEBUI_SETTINGS"), "agent_url", None))
    return {"attempts": attempts, "live": reading and task.state in _RUNNING}


def _invalid_id(task_id: str) -> str | None:
    if len(task_id) > MAX_TASK_ID_LENGTH:
        return f"A task id is at most {MAX_TASK_ID_LENGTH} characters; this one has {len(task_id)}."
    if _CONTROL_CHARACTERS.search(task_id):
        return "A task id cannot contain control characters (newlines, tabs, NUL…)."
    return None


def _facts(task: Task) -> dict[str, Any]:
    """Derived numbers: queue wait, whether a run was repeated, the detail JSON."""
    detail = task_queries.json_object(task.detail) or {}
    queued_at = task.sent_at if task.sent_at is not None else task.received_at
    wait = task.started_at - queued_at if task.started_at is not None and queued_at is not None else None
    duplicates = detail.get("duplicate_starts") or 0
    repeated = task.executions > task.retries + 1 or bool(duplicates)
    return {"detail": detail, "queue_wait": wait, "repeated": repeated, "duplicate_starts": duplicates,
            "progress": _progress(task, detail.get("progress")), "promise": _promise(task, detail)}


def _promise(task: Task, detail: dict[str, Any]) -> dict[str, Any] | None:
    """While the task runs, its promise of progress (webui.agent.expect_progress) and whether it holds."""
    promise = progress_promise.of_task(task.progress_every, task.started_at, task.attempt, detail)
    if promise is None or task.state != "STARTED":
        return None
    now, grace = time.time(), rules.promise_grace(task.name)
    return {"text": promise.text(now, grace), "broken": promise.broken(now, grace)}


def _progress(task: Task, reported: Any) -> dict[str, Any] | None:
    """What the task last said with webui.agent.report_progress, with a percentage and, while it runs, an
    estimated finish: the pace so far (time since it started / work done) applied to the work left."""
    if not isinstance(reported, dict) or not isinstance(reported.get("current"), int | float):
        return None
    current, total, at = reported["current"], reported.get("total"), reported.get("at")
    percent = min(100.0, max(0.0, 100.0 * current / total)) if isinstance(total, int | float) and total > 0 else None
    finish = None
    if task.state == "STARTED" and percent is not None and current > 0 and isinstance(at, int | float) \
            and task.started_at is not None and at >= task.started_at:
        finish = at + (total - current) * (at - task.started_at) / current
    return {"current": current, "total": total, "percent": percent, "at": at, "finish": finish,
            "message": reported.get("message"), "running": task.state == "STARTED"}

