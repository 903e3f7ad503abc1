"""`/alerts/maintenance`: windows during which the rules they name open nothing and send nothing (a deploy, a
broker upgrade). Operators create them, end them early and delete them; everyone sees them.

A window names rules by shell patterns on their names (none: every rule), as the alert runner matches them
(webui.alerts.runner). Times are typed in UTC, so what is typed means the same to everyone on the team.
"""
from __future__ import annotations

import datetime
import time
from fnmatch import fnmatchcase

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from webui import audit, fastjson
from webui.alerts import editing, queries
from webui.alerts.rules import RuleError
from webui.auth.access import requires
from webui.store.models import AlertMaintenance, AlertRule
from webui.views.alerts import MAX_ID, actor, bp, here

PAST_SHOWN = 50
DURATIONS = ((30, "30 min"), (60, "1 h"), (120, "2 h"), (240, "4 h"), (480, "8 h"), (1440, "24 h"))


def parse_utc(text: str) -> float:
    """A `datetime-local` input's value ("2025-03-01T14:30"), read as UTC; ValueError when it is none."""
    moment = datetime.datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def patterns(window: AlertMaintenance) -> list[str]:
    return [str(p) for p in fastjson.loads_as(window.rules, list)]


def muted_rules(window: AlertMaintenance, rules: list[AlertRule]) -> list[str]:
    """The names of the rules this window mutes while it is on."""
    names = patterns(window)
    return [r.name for r in rules if not names or any(fnmatchcase(r.name, p) for p in names)]


@bp.get("/alerts/maintenance")
def maintenance() -> tuple[str, int] | str:
    """Windows under way and to come, then the latest past ones; the form to add one (operators)."""
    return _page()


def _page(problems: list[str] | None = None, status: int = 200) -> tuple[str, int]:
    now = time.time()
    current = list(AlertMaintenance.select().where(AlertMaintenance.ends_at > now)
                   .order_by(AlertMaintenance.starts_at))
    past = list(AlertMaintenance.select().where(AlertMaintenance.ends_at <= now)
                .order_by(AlertMaintenance.ends_at.desc()).limit(PAST_SHOWN))
    return render_template("alerts/maintenance.html", page_title="Maintenance windows", current=current, past=past,
                           now=now, patterns=patterns, muted_rules=muted_rules, rules=queries.rules(),
                           durations=DURATIONS, problems=problems or [], form=request.form), status


@bp.post("/alerts/maintenance")
@requires("operator")
def create_maintenance() -> Response | tuple[str, int]:
    """Add a window from `starts` (UTC; blank: now) for `minutes`."""
    form, now, problems = request.form, time.time(), []
    name = form.get("name", "")[:300].strip()
    names = [line.strip() for line in form.get("rules", "")[:5000].splitlines() if line.strip()]
    reason = form.get("reason", "")[:3000].strip() or None
    starts_at = now
    if form.get("starts", "").strip():
        try:
            starts_at = parse_utc(form.get("starts", "")[:40])
        except ValueError:
            problems.append(f"The start must be a date and time such as 2025-03-01T14:30 (UTC); got "
                            f"{form.get('starts', '')[:40]!r}.")
    try:
        minutes = float(form.get("minutes", "") or "nan")
        if not 1 <= minutes <= editing.MAX_WINDOW_DAYS * 1440:
            raise ValueError
    except ValueError:
        problems.append(f"Say how long it lasts: 1 to {editing.MAX_WINDOW_DAYS * 1440} minutes.")
        minutes = 0.0
    if not problems:
        try:
            window = editing.create_window(name, names, starts_at, starts_at + minutes * 60, reason, actor(), now)
        except RuleError as exc:
            problems = [p[:1].upper() + p[1:] + "." for p in str(exc).split("; ")]
        else:
            audit.record("alert_maintenance.create", name, rules=names or "all", starts_at=starts_at,
                         ends_at=window.ends_at)
            flash(f"Maintenance window {name!r} added.")
            return redirect(url_for("alerts.maintenance"), 303)
    audit.record("alert_maintenance.create", name or None, "refused", reason=" ".join(problems))
    return _page(problems, 400)


@bp.post("/alerts/maintenance/<int:window_id>/end")
@requires("operator")
def end_maintenance(window_id: int) -> Response | tuple[str, int]:
    """End a window now (one yet to come is cancelled, and stays listed)."""
    window = _find(window_id)
    if window is None:
        return _page([f"No maintenance window {window_id}."], 404)
    if not editing.end_window(window):
        return _page([f"The window {window.name!r} is over already."], 409)
    audit.record("alert_maintenance.end", window.name)
    flash(f"Maintenance window {window.name!r} ended: its rules alert again from their next evaluation.")
    return redirect(url_for("alerts.maintenance"), 303)


@bp.post("/alerts/maintenance/<int:window_id>/delete")
@requires("operator")
def delete_maintenance(window_id: int) -> Response | tuple[str, int]:
    """Ask, then delete a window (ending it first if it is on)."""
    window = _find(window_id)
    if window is None:
        return _page([f"No maintenance window {window_id}."], 404)
    if request.form.get("confirm") != "1":
        on = window.starts_at <= time.time() < window.ends_at
        return render_template(
            "alerts/confirm.html", page_title="Delete maintenance window",
            title=f"Delete the maintenance window {window.name!r}?",
            text=("It is on now: its rules alert again from their next evaluation. " if on else "")
            + "It disappears from this list; the audit log keeps who created and deleted it.",
            action=here(), button="Delete the window", back=url_for("alerts.maintenance")), 200
    editing.delete_window(window)
    audit.record("alert_maintenance.delete", window.name)
    flash(f"Deleted the maintenance window {window.name!r}.")
    return redirect(url_for("alerts.maintenance"), 303)


def _find(window_id: int) -> AlertMaintenance | None:
    return AlertMaintenance.get_or_none(AlertMaintenance.id == window_id) if window_id <= MAX_ID else None
