"""`/workers` and `/worker/<hostname>`: workers from their heartbeats and the collector's last inspection.

Nothing here broadcasts: the collector inspects every `inspect_interval` seconds and the pages show how old
that data is. The one action, forgetting an offline worker, is a same-origin POST.
"""
from __future__ import annotations

import re
from functools import lru_cache

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from webui import audit, worker_groups
from webui.auth.access import requires
from webui.store import worker_queries
from webui.views.same_origin import same_origin_required

bp = Blueprint("workers", __name__)

MAX_HOSTNAME = 255


@lru_cache(maxsize=4)
def _compiled(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


@bp.get("/workers")
def index() -> str:
    """Workers by stable group name, online first; offline ones collapsed and forgettable."""
    settings = current_app.config["WEBUI_SETTINGS"]
    online, offline = worker_queries.list_workers()
    groups = worker_groups.group(online, offline, lambda v: v.worker.hostname,
                                 _compiled(settings.worker_group_pattern))
    failures, failures_capped = worker_queries.failures_by_worker()
    return render_template(
        "workers.html", page_title="Workers", online=online, offline=offline, groups=groups,
        grouped=any(not g.single for g in groups), failures=failures, failures_capped=failures_capped,
        forgotten=worker_queries.forgotten_count(), inspect_interval=settings.inspect_interval,
        forgot=request.args.get("forgot", "")[:MAX_HOSTNAME])


@bp.get("/worker/<path:hostname>")
def detail(hostname: str) -> tuple[str, int] | str:
    """One worker: pool, queues, registered and held tasks, configuration, last 24 h, recent tasks."""
    _check_hostname(hostname)
    view = worker_queries.worker_detail(hostname)
    if view is None:
        return render_template("worker_detail.html", page_title="Unknown worker", view=None,
                               hostname=hostname), 404
    return render_template(
        "worker_detail.html", page_title=hostname, view=view, hostname=hostname,
        transitions=worker_queries.transitions(view.worker),
        day=worker_queries.last_24h(hostname), stats_limit=worker_queries.STATS_TASK_LIMIT,
        recent=worker_queries.recent_tasks(hostname), forgotten=worker_queries.is_forgotten(view.worker),
        inspect_interval=current_app.config["WEBUI_SETTINGS"].inspect_interval,
        link_tasks="task.detail" in current_app.view_functions)


@bp.post("/workers/forget")
@same_origin_required
@requires("admin")
def forget() -> Response | tuple[str, int]:
    """Hide an offline worker from the list until it sends an event again; 409 if it is online."""
    hostname = request.form.get("hostname", "")
    if not hostname:
        abort(400, description="Say which worker to forget: the form field `hostname` is missing or empty.")
    _check_hostname(hostname)
    outcome = worker_queries.forget(hostname)
    audit.record("worker-forget", hostname, "ok" if outcome == "forgotten" else "failed", outcome=outcome)
    if outcome == "unknown":
        abort(404, description=f"No worker named {hostname!r} has been seen by this monitor.")
    if outcome == "online":
        abort(409, description=f"{hostname} is online: only an offline worker can be forgotten.")
    return redirect(url_for("workers.index", forgot=hostname), code=303)


def _check_hostname(hostname: str) -> None:
    if len(hostname) > MAX_HOSTNAME:
        abort(400, description=f"A worker hostname has at most {MAX_HOSTNAME} characters.")
