"""Jinja filters shared by every page: times the browser localises, durations, state badges, row links."""
from __future__ import annotations

import datetime
from typing import Any

from flask import Flask, current_app, g, url_for
from markupsafe import Markup, escape

NAV_ITEMS = (
    ("home.index", "Overview"),
    ("tasks.index", "Tasks"),
    ("workers.index", "Workers"),
    ("queues.index", "Queues"),
    ("beat.index", "Beat"),
    ("alerts.incidents", "Alerts"),
    ("broker.index", "Broker"),
    ("events.index", "Events"),
)


def time_tag(epoch: float | None) -> Markup:
    """`<time>` with the exact UTC time; static/js/webui.js shows it relative, in the viewer's timezone."""
    if epoch is None:
        return Markup('<span class="muted">—</span>')
    try:
        moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):  # stored before the collector bounded timestamps
        return Markup('<span class="muted" title="not a date">{}</span>').format(epoch)
    iso = moment.isoformat(timespec="milliseconds")
    text = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup(f'<time class="ts" datetime="{iso}" data-epoch="{epoch:.3f}" title="{text}">{text}</time>')


def duration(seconds: float | None) -> str:
    """A runtime or a wait: '850 ms', '12.3 s', '4 min 05 s', '2 h 03 min'."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def state_badge(state: str | None) -> Markup:
    state = state or "UNKNOWN"
    return Markup(f'<span class="badge state-{escape(state.lower())}">{escape(state)}</span>')


_MARKER = "webui-path-href-marker"


def path_href(endpoint: str, **value: str) -> str:
    """`url_for(endpoint, name=value)` for a route whose one argument is a path (a task's, a worker's page),
    built as url_for builds it, its prefix once per request: the map's build per row was a fifth of the tasks
    page's CPU."""
    [(name, text)] = value.items()
    cache: dict[tuple[str, str], tuple[str, str, Any]] = g.setdefault("_webui_path_hrefs", {})
    parts = cache.get((endpoint, name))
    if parts is None:
        built = url_for(endpoint, **{name: _MARKER})  # type: ignore[arg-type]  # the route's own argument
        prefix, _, suffix = built.partition(_MARKER)
        [rule] = current_app.url_map.iter_rules(endpoint)
        parts = cache[(endpoint, name)] = (prefix, suffix, rule._converters[name])
    prefix, suffix, converter = parts
    return prefix + converter.to_url(text) + suffix


def init_app(app: Flask) -> None:
    app.jinja_env.globals["path_href"] = path_href
    app.jinja_env.filters["ts"] = time_tag
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.filters["state_badge"] = state_badge

    @app.context_processor
    def navigation() -> dict[str, object]:
        # Only pages that exist: the navigation grows with the app.
        return {"nav_items": [(e, label) for e, label in NAV_ITEMS if e in app.view_functions]}
