"""`/doctor`: the config doctor's advice, each check with what it found, what to change and why.

The checks (webui.detect.doctor) read what the store already holds (the workers' last inspection replies,
recent tasks, the rollups) and the monitor's own app: rendering this page asks no worker anything. The
"Configuration problems" alert rule runs the same checks and opens an incident for each warning.
"""
from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, render_template

from webui.detect import doctor
from webui.detect.findings import DetectContext

bp = Blueprint("doctor", __name__)

ORDER = {doctor.WARN: 0, doctor.UNKNOWN: 1, doctor.OK: 2}
LABELS = {doctor.WARN: "change this", doctor.UNKNOWN: "cannot tell yet", doctor.OK: "fine"}


@bp.get("/doctor")
def index() -> str:
    """Warnings first, then what cannot be judged yet, then what is fine (each group in the checks' order)."""
    advice = doctor.advise(_context())
    ordered = sorted(advice, key=lambda a: ORDER.get(a.status, 1))  # sorted() keeps the checks' order in a group
    counts = {status: sum(1 for a in advice if a.status == status) for status in ORDER}
    return render_template("doctor.html", page_title="Config doctor", advice=ordered, counts=counts,
                           labels=LABELS, checked_at=time.time(),
                           alerts="alerts.rules" in current_app.view_functions)


def _context() -> DetectContext:
    celery_app: Any = current_app.extensions["webui_celery_app"]
    return DetectContext(current_app.config["WEBUI_DATABASE"], time.time(), current_app.config["WEBUI_SETTINGS"],
                         str(celery_app.conf.timezone or "UTC"), celery_app)
