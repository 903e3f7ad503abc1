"""`/`: tasks by state, workers online and offline, and what the collector is doing."""
from __future__ import annotations

from flask import Blueprint, render_template

from webui.store import queries

bp = Blueprint("home", __name__)


@bp.get("/")
def index() -> str:
    online, offline = queries.workers_by_status()
    return render_template(
        "home.html",
        counts=queries.task_counts_by_state(),
        online=online,
        offline=offline,
        status=queries.collector_status(),
        gaps=queries.recent_gaps(),
    )
