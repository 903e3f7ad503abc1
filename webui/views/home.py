"""`/`: the overview. Counts and charts from the per-minute rollups, the latest failures and events, problems.

`/overview/sections` renders the same template's `overview` block: htmx swaps it in every 10 s and whenever
the live hub says the overview changed (`live:overview` on document.body).
"""
from __future__ import annotations

import datetime
import time
from typing import Any

from flask import Blueprint, current_app, render_template

from webui.alerts import queries as alert_queries
from webui.beat import board as beat_board
from webui.store import overview_queries, queries
from webui.views import first_run
from webui.views.overview_charts import BarChart, stacked_bars

bp = Blueprint("home", __name__)

TEMPLATE = "home.html"


@bp.get("/")
def index() -> str:
    return render_template(TEMPLATE, **_overview())


@bp.get("/overview/sections")
def sections() -> str:
    """The page's refreshable part only (the `overview` block of the same template)."""
    return _render_block(TEMPLATE, "overview", _overview())


def _overview() -> dict[str, Any]:
    now = time.time()
    activity = overview_queries.activity(now)
    online, offline = overview_queries.worker_counts()
    status = queries.collector_status()
    return {
        "now": now,
        "activity": activity,
        "throughput": _throughput_chart(activity.per_minute),
        "trend": _trend_chart(activity.trend),
        "failing": overview_queries.top_failing_names(now - overview_queries.DAY),
        "exceptions": overview_queries.top_exceptions(now - overview_queries.DAY),
        "feed": overview_queries.recent_events(),
        "workers_online": online,
        "workers_offline": offline,
        "status": status,
        "heartbeat_age": now - status.heartbeat_at if status else None,
        "heartbeat_stale_after": queries.HEARTBEAT_STALE_AFTER,
        "gaps": overview_queries.gap_summary(now),
        "recent_gaps": queries.recent_gaps(),
        "queues": _queues(now),
        "beat": _beat(),
        "alerts": _open_incidents(),
        "first_run": first_run.current_step(now),
        "first_run_steps": first_run.STEPS,
        "links": {e: e in current_app.view_functions
                  for e in ("workers.index", "queues.index", "task.detail", "doctor.index")},
    }


def _hhmm(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime("%H:%M UTC")


def _throughput_chart(per_minute: list[tuple[int, int, int]]) -> BarChart:
    return stacked_bars(
        [(f"{_hhmm(m)}: {ok} succeeded, {bad} failed", (ok, bad)) for m, ok, bad in per_minute],
        ("bar-ok", "bar-bad"))


def _trend_chart(trend: list[tuple[int, int, int]]) -> BarChart:
    return stacked_bars(
        [(f"{_hhmm(b)}–{_hhmm(b + overview_queries.TREND_BIN)}: {failed} failed, {retried} retried",
          (failed, retried)) for b, failed, retried in trend],
        ("bar-bad", "bar-warn"))


def _queues(now: float) -> list[Any] | None:
    """The latest depth of each queue sampled in the last 10 minutes; None when there is no queue sampler."""
    try:
        from webui.store import queue_queries
    except ImportError:
        return None
    try:
        views = queue_queries.queue_overview(window=600, now=now)
    except Exception:  # noqa: BLE001 - no queue_sample table in this schema: leave the section out
        current_app.logger.debug("no queue samples to show", exc_info=True)
        return None
    return sorted(views, key=lambda v: (-(v.latest.depth or 0), v.name))


def _beat() -> beat_board.Board | None:
    """The beat board for the overview's banner (beat down, entries missed); None when no entry is watched."""
    if "beat.index" not in current_app.view_functions:
        return None
    timezone = str(current_app.extensions["webui_celery_app"].conf.timezone or "UTC")
    board = beat_board.load_board(current_app.config["WEBUI_SETTINGS"], timezone)
    return board if board.entries else None


def _open_incidents() -> dict[str, int] | None:
    """Open incidents by severity for the overview's banner; None when there are none (or no alerts pages)."""
    if "alerts.incidents" not in current_app.view_functions:
        return None
    counts = alert_queries.open_summary()
    return counts if any(counts.values()) else None


def _render_block(template_name: str, block: str, context: dict[str, Any]) -> str:
    """Render one block of a template with the app's context processors, as jinja2-fragments does."""
    env = current_app.jinja_env
    template = env.get_template(template_name)
    current_app.update_template_context(context)
    return "".join(template.blocks[block](template.new_context(context)))
