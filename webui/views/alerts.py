"""`/alerts`: incidents (open first, then resolved, paged) and one incident with its timeline and notifications;
operators acknowledge, silence and unsilence it from there.

The `alerts` blueprint also carries the rules (alerts_rules.py), channels (alerts_channels.py) and maintenance
windows (alerts_maintenance.py) pages. Nothing here evaluates a rule: the leading collector's alert runner
(webui.alerts.runner) opens and resolves incidents; these pages read what it stored and record what people do.
Every change is a POST with the CSRF token, checked by role, audited, then a redirect back (POST/redirect/GET)
with a one-line notice; a refusal shows its reason on the page it came from. The list refreshes itself with
htmx from the same template's `incidents_board` block.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from peewee import DatabaseError
from werkzeug.wrappers import Response

from webui import audit, fastjson
from webui.alerts import actions, notifier, queries
from webui.alerts.rules import SEVERITIES, spec_of
from webui.auth.access import requires
from webui.store.models import AlertChannel, AlertIncident

log = logging.getLogger(__name__)

bp = Blueprint("alerts", __name__)

RESOLVED_PAGE = 50
OPEN_SHOWN = 500  # open incidents listed at once; more than this is a flood the rules should aggregate
SILENCE_PRESETS = ((15, "15 min"), (60, "1 h"), (240, "4 h"), (1440, "24 h"))
REFRESH_SECONDS = 10
MAX_ID = 2**63 - 1
STATE_FILTERS = ("", *queries.STATES)
SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES, start=1)}


# -- shared by the alerts pages -------------------------------------------------------------------------------

def actor() -> str:
    identity = g.get("identity")
    return identity.label if identity is not None else "anonymous"


def int_arg(name: str, text: str | None) -> int | None:
    """A positive id from a query or form field ('' → None); ValueError with a message otherwise."""
    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 18 or int(text) < 1:
        raise ValueError(f"'{name}' must be a positive whole number (an id); got {text[:40]!r}.")
    return int(text)


def here() -> str:
    """This request's URL without its query, under the path prefix (a form posting back to where it came from)."""
    return url_for(request.endpoint or "alerts.incidents", **(request.view_args or {}))


def render_block(template_name: str, block: str, context: dict[str, Any]) -> str:
    """One block of a template with the app's context processors: the htmx fragment of a page."""
    template = current_app.jinja_env.get_template(template_name)
    current_app.update_template_context(context)
    return "".join(template.blocks[block](template.new_context(context)))


def ui_link(path: str | None) -> str | None:
    """A finding's link (a path inside the UI) under this request's prefix; None for anything but such a path."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return None
    return (request.script_root or "") + path


def fact_text(value: Any) -> str:
    """A detail value as text: strings as they are, the rest as JSON (the template escapes it)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return json.dumps(value, ensure_ascii=False, default=repr)


def rules_file() -> str | None:
    return current_app.config["WEBUI_SETTINGS"].alert_rules_file


@bp.app_template_filter("plain_number")
def plain_number(value: Any) -> str:
    """1.0 → '1', 0.5 → '0.5': a limit or a default as someone would type it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@bp.app_template_filter("minutes")
def minutes_text(minutes: float | None) -> str:
    """A rule's or a silence's minutes in words: '30 min', '1 h 30 min', '24 h', '3 days'."""
    if minutes is None:
        return "—"
    if minutes < 60:
        return f"{plain_number(round(minutes, 1))} min"
    hours, rest = divmod(round(minutes), 60)
    if hours >= 48 and not rest and hours % 24 == 0:
        return f"{hours // 24} days"
    return f"{hours} h" + (f" {rest} min" if rest else "")


@bp.app_template_filter("fromjson_list")
def fromjson_list(text: str | None) -> list[Any]:
    """A stored JSON list (a rule's scope or channels); empty when absent or not a list."""
    return fastjson.loads_as(text, list)


@bp.app_context_processor
def _alerts_helpers() -> dict[str, Any]:
    return {"severities": SEVERITIES, "ui_link": ui_link, "fact_text": fact_text, "alerts_nav_badge": _nav_badge,
            "delivery_status": notifier.status}


def _nav_badge(endpoint: str) -> int | None:
    """The navigation's count of open incidents beside "Alerts" (one indexed COUNT, only when the nav shows)."""
    if endpoint != "alerts.incidents":
        return None
    try:
        count = AlertIncident.select().where(AlertIncident.state == "open").count()
    except DatabaseError:  # a store without the alerts tables yet: no badge rather than no page
        log.debug("no open-incident count for the navigation", exc_info=True)
        return None
    return int(count) or None


# -- incidents ----------------------------------------------------------------------------------------------

@bp.get("/alerts")
def incidents() -> tuple[str, int] | str:
    """Open incidents, then resolved ones (paged with `before`); `state` and `rule` filter; htmx: the board only."""
    state, problem = request.args.get("state", ""), None
    try:
        rule_id = int_arg("rule", request.args.get("rule"))
        before = int_arg("before", request.args.get("before"))
        if state not in STATE_FILTERS:
            raise ValueError(f"'state' is open or resolved (or empty for both); got {state[:40]!r}.")
    except ValueError as exc:
        state, rule_id, before, problem = "", None, None, str(exc)
    open_rows = queries.incidents("open", rule_id, None, OPEN_SHOWN) if state != "resolved" and not problem else []
    open_rows.sort(key=lambda v: -SEVERITY_RANK.get(v.incident.severity, 0))  # loudest first, newest first within
    resolved = queries.incidents("resolved", rule_id, before, RESOLVED_PAGE) \
        if state != "open" and not problem else []
    context = {"open_rows": open_rows, "resolved": resolved, "state": state, "rule_id": rule_id, "before": before,
               "problem": problem, "rules": queries.rules(), "refresh": REFRESH_SECONDS,
               "older": resolved[-1].incident.id if len(resolved) == RESOLVED_PAGE else None,
               "open_capped": len(open_rows) == OPEN_SHOWN, "counts": queries.open_summary(), "now": time.time()}
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "incidents-board":
        return render_block("alerts/incidents.html", "incidents_board", context)
    html = render_template("alerts/incidents.html", page_title="Alerts", **context)
    return (html, 400) if problem else html


@bp.get("/alerts/incidents/<int:incident_id>")
def incident(incident_id: int) -> tuple[str, int]:
    """One incident: what, where, since when, its facts, its timeline, the messages sent, and the buttons."""
    return _incident_page(incident_id)


def _incident_page(incident_id: int, problem: str | None = None, status: int = 200) -> tuple[str, int]:
    view = queries.incident(incident_id) if incident_id <= MAX_ID else None
    if view is None:
        return render_template("alerts/incident.html", view=None, incident_id=incident_id,
                               page_title="Unknown incident"), 404
    channels = {c.id: c for c in AlertChannel.select()}
    return render_template(
        "alerts/incident.html", view=view, incident_id=incident_id, page_title=f"Incident {incident_id}",
        timeline=queries.timeline(incident_id), notifications=queries.notifications(incident_id),
        channels=channels, rule_channels=spec_of(view.rule).channels if view.rule else [],
        presets=SILENCE_PRESETS, max_silence=actions.MAX_SILENCE_MINUTES,
        problem=problem, now=time.time()), status


@bp.post("/alerts/incidents/<int:incident_id>/ack")
@requires("operator")
def acknowledge(incident_id: int) -> Response | tuple[str, int]:
    """"I'm on it": no more reminders for this incident."""
    return _act("incident.ack", incident_id, lambda who: actions.acknowledge(incident_id, who), "Acknowledged.")


@bp.post("/alerts/incidents/<int:incident_id>/silence")
@requires("operator")
def silence(incident_id: int) -> Response | tuple[str, int]:
    """Silence for the preset or custom `minutes`: no reminders and no "resolved" message until then."""
    text = request.form.get("minutes", "").strip()
    try:
        minutes = float(text)
        if minutes != minutes or minutes in (float("inf"), float("-inf")):  # NaN, inf
            raise ValueError
    except ValueError:
        audit.record("incident.silence", f"incident {incident_id}", "refused", reason="no minutes")
        return _incident_page(incident_id, f"Silence for how long? Give a number of minutes (1 to "
                        f"{actions.MAX_SILENCE_MINUTES}); got {text[:40]!r}.", 400)
    until = "for " + next((label for m, label in SILENCE_PRESETS if m == minutes), f"{minutes:g} min")
    return _act("incident.silence", incident_id, lambda who: actions.silence(incident_id, minutes, who),
                f"Silenced {until}.", minutes=minutes)


@bp.post("/alerts/incidents/<int:incident_id>/unsilence")
@requires("operator")
def unsilence(incident_id: int) -> Response | tuple[str, int]:
    return _act("incident.unsilence", incident_id, lambda who: actions.unsilence(incident_id, who), "Unsilenced.")


def _act(action: str, incident_id: int, do: Callable[[str], Any], done: str, **detail: Any) \
        -> Response | tuple[str, int]:
    target = f"incident {incident_id}"
    try:
        if incident_id > MAX_ID:
            raise actions.ActionError(f"no incident {incident_id}", 404)
        do(actor())
    except actions.ActionError as exc:
        audit.record(action, target, "refused", reason=str(exc))
        message = str(exc)
        return _incident_page(incident_id, message[:1].upper() + message[1:] + ".", exc.status)
    audit.record(action, target, **detail)
    flash(done)
    return redirect(url_for("alerts.incident", incident_id=incident_id), 303)


# The rules, channels and maintenance pages add their routes to `bp`.
from webui.views import alerts_channels, alerts_maintenance, alerts_rules  # noqa: E402,F401
