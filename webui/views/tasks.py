"""`/tasks`: the tasks list with its filters, keyset pages, live "new tasks" notice, and streamed exports.

Every route parses the same `TaskFilter` (webui.task_filters) and reads through webui.store.task_list, so a
filter means the same on the page, in its htmx fragments and in an export. A bad parameter is a 400 with
the parser's message: on the page as a banner above the form, in an export as plain text.
"""
from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, stream_with_context
from werkzeug.datastructures import MultiDict

from webui import task_export
from webui.collector.merge import ALL_STATES
from webui.store import task_list
from webui.store.models import Task, Worker
from webui.task_filters import RANGES, SORTS, TIME_FIELDS, FilterError, TaskFilter, parse

bp = Blueprint("tasks", __name__)

NEW_TASKS_SHOWN = 100  # "100+ new tasks": a notice, not a count of a flood


def _database() -> Any:
    return current_app.config["WEBUI_DATABASE"]


def _parse() -> tuple[TaskFilter, str | None]:
    """The request's filter, or the empty filter and the reason when a parameter is bad."""
    try:
        return parse(request.args, time.time()), None
    except FilterError as exc:
        return parse(MultiDict(), time.time()), str(exc)


@bp.get("/tasks")
def index() -> tuple[str, int] | str:
    """The page: filters, the first (or the cursor's) page of tasks, and the live notice."""
    flt, problem = _parse()
    page = task_list.fetch_page(_database(), flt) if problem is None else None
    html = render_template("tasks.html", page_title="Tasks", flt=flt, page=page, problem=problem,
                           form=_form_options(), args=request.args)
    return (html, 400) if problem else html


@bp.get("/tasks/rows")
def rows() -> tuple[str, int] | str:
    """The next page's rows (htmx "More"): they replace the row that asked for them."""
    flt, problem = _parse()
    if problem is not None:
        return render_template("tasks/problem_row.html", problem=problem), 400
    page = task_list.fetch_page(_database(), flt)
    return render_template("tasks/rows.html", flt=flt, page=page)


@bp.get("/tasks/new")
def new_tasks() -> tuple[str, int] | str:
    """How many matching tasks were first seen after the newest one shown (the live notice)."""
    flt, problem = _parse()
    newest = request.args.get("newest", "")
    if problem is not None or not newest.isdigit() or len(newest) > 18:
        return "", 400
    count, complete = task_list.count_newer(_database(), flt, int(newest), NEW_TASKS_SHOWN)
    return render_template("tasks/new_notice.html", flt=flt, count=count,
                           more=count >= NEW_TASKS_SHOWN or not complete)


@bp.get("/tasks/count")
def count() -> tuple[str, int] | str:
    """How many tasks the filter matches, bounded ("10,000+"): loaded after the page, so it never delays it."""
    flt, problem = _parse()
    if problem is not None:
        return "", 400
    return render_template("tasks/count.html", flt=flt, counted=task_list.count_matching(_database(), flt))


@bp.get("/tasks/export.<any(csv, json):fmt>")
def export(fmt: str) -> Response:
    """Every task the filter matches, streamed (a million rows never sit in memory)."""
    flt, problem = _parse()
    if problem is not None:
        return Response(problem + "\n", status=400, mimetype="text/plain")
    tasks = task_list.iter_all(_database(), flt)
    body = task_export.csv_lines(tasks) if fmt == "csv" else task_export.json_lines(tasks)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    return Response(stream_with_context(body), mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="tasks-{stamp}.{fmt}"',
        "X-Content-Type-Options": "nosniff",
    })


def _form_options() -> dict[str, Any]:
    """Choices for the filter form: states, sorts, ranges, and the workers this monitor knows."""
    workers = [w.hostname for w in Worker.select(Worker.hostname).order_by(Worker.hostname).limit(500)]
    return {"states": ALL_STATES, "sorts": SORTS, "ranges": RANGES, "time_fields": TIME_FIELDS,
            "workers": workers, "has_tasks": Task.select(Task.id).limit(1).exists()}
