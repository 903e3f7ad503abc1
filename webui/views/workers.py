"""`/workers` and `/worker/<hostname>`: workers from their heartbeats and the collector's last inspection.

Nothing here broadcasts: the collector inspects every `inspect_interval` seconds and the pages show how old
that data is.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from webui.store import worker_queries

bp = Blueprint("workers", __name__)

MAX_HOSTNAME = 255


@bp.get("/workers")
def index() -> str:
    """Online workers, then offline ones (collapsed), with pool, queues and the inspection's age."""
    online, offline = worker_queries.list_workers()
    return render_template("workers.html", page_title="Workers", online=online, offline=offline,
                           inspect_interval=current_app.config["WEBUI_SETTINGS"].inspect_interval)


@bp.get("/worker/<path:hostname>")
def detail(hostname: str) -> tuple[str, int] | str:
    """One worker: pool, queues, registered and held tasks, configuration, transitions."""
    if len(hostname) > MAX_HOSTNAME:
        abort(400, description=f"A worker hostname has at most {MAX_HOSTNAME} characters.")
    view = worker_queries.worker_detail(hostname)
    if view is None:
        return render_template("worker_detail.html", page_title="Unknown worker", view=None,
                               hostname=hostname), 404
    return render_template(
        "worker_detail.html", page_title=hostname, view=view, hostname=hostname,
        transitions=worker_queries.transitions(view.worker),
        inspect_interval=current_app.config["WEBUI_SETTINGS"].inspect_interval,
        link_tasks="task.detail" in current_app.view_functions)
