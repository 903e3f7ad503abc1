"""`/queues` and `/queue/<name>`: each queue's depth now, its last hour, its consumers, its oldest message.

Nothing here asks the broker: the collector's queue sampler stores a sample of every queue every
`queue_sample_interval` seconds (webui.collector.queue_sampler) and these pages read the store. The table
refreshes itself with htmx from the same template's `queue_table` block.
"""
from __future__ import annotations

from collections.abc import Sequence

from flask import Blueprint, abort, current_app, render_template, request
from markupsafe import Markup

from webui.collector.queue_sampler import MAX_NAME, valid_name
from webui.store import queue_queries

bp = Blueprint("queues", __name__)

WINDOWS = {"1h": 3600.0, "6h": 6 * 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}


# -- pure: the sparkline --------------------------------------------------------------------------------------

def sparkline_path(points: Sequence[tuple[float, int | None]], start: float, end: float, *, width: float,
                   height: float, gap: float | None = None, pad: float = 2.0) -> str:
    """An SVG path `d` of depth over time: x spans start..end, y spans 0..max depth (a flat 0 lies on the floor).

    A missing sample (None), or more than `gap` seconds between two samples, lifts the pen: no line is drawn
    through time nobody measured.
    """
    known = [d for _, d in points if d is not None]
    if not known or end <= start:
        return ""
    top = max(max(known), 1)
    span = end - start
    commands: list[str] = []
    previous: float | None = None
    for at, depth in points:
        if depth is None:
            previous = None
            continue
        x = (min(max(at, start), end) - start) / span * width
        y = height - pad - depth / top * (height - 2 * pad)
        pen = "L" if previous is not None and (gap is None or at - previous <= gap) else "M"
        if pen == "M" and commands and commands[-1].startswith("M"):
            commands[-1] += " h0"  # an isolated sample: a zero-length stroke, drawn as a dot (round caps)
        commands.append(f"{pen}{x:.1f} {y:.1f}")
        previous = at
    if commands and commands[-1].startswith("M"):
        commands[-1] += " h0"
    return " ".join(commands)


def sparkline(points: Sequence[tuple[float, int | None]], start: float, end: float, *, width: int = 120,
              height: int = 28, gap: float | None = None, label: str = "") -> Markup:
    """An inline SVG sparkline (styled by queues.css: no inline styles under our CSP)."""
    d = sparkline_path(points, start, end, width=width, height=height, gap=gap)
    if not d:
        return Markup('<span class="muted">—</span>')
    # The latest sample as a dot (a zero-length round-capped stroke: round however the chart is stretched).
    last = d.rsplit("M", 1)[-1].rsplit("L", 1)[-1].replace(" h0", "").strip()
    return Markup(
        f'<svg class="sparkline" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{Markup.escape(label)}" preserveAspectRatio="none">'
        f'<line class="sparkline-floor" x1="0" y1="{height - 2}" x2="{width}" y2="{height - 2}"/>'
        f'<path class="sparkline-line" d="{d}"/><path class="sparkline-now" d="M{last} h0"/></svg>')


# -- routes ---------------------------------------------------------------------------------------------------

@bp.get("/queues")
def index() -> str:
    """Every queue sampled in the last hour; only the table when htmx asks for a refresh."""
    interval = current_app.config["WEBUI_SETTINGS"].queue_sample_interval
    queues = sorted(queue_queries.queue_overview(), key=lambda q: (not q.unattended, q.name))
    context = {"queues": queues, "interval": interval, "gap": 3 * interval, "window": 3600.0,
               "sparkline": sparkline}
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "queue-table":
        template = current_app.jinja_env.get_template("queues.html")
        current_app.update_template_context(context)
        return "".join(template.blocks["queue_table"](template.new_context(context)))
    return render_template("queues.html", page_title="Queues", **context)


@bp.get("/queue/<path:name>")
def detail(name: str) -> tuple[str, int] | str:
    """One queue: its depth over a chosen window (1 hour by default), priorities, consumers."""
    if not valid_name(name):
        abort(400, description=f"A queue name has 1 to {MAX_NAME} characters and no control characters.")
    window_key = request.args.get("window", "1h")
    if window_key not in WINDOWS:
        abort(400, description=f"window is one of {', '.join(WINDOWS)}.")
    interval = current_app.config["WEBUI_SETTINGS"].queue_sample_interval
    view = queue_queries.queue_detail(name, WINDOWS[window_key])
    context = {"name": name, "view": view, "interval": interval, "gap": 3 * interval,
               "window": WINDOWS[window_key], "window_key": window_key, "windows": list(WINDOWS),
               "sparkline": sparkline, "page_title": name}
    if view is None:
        return render_template("queue_detail.html", **context), 404
    return render_template("queue_detail.html", **context)
