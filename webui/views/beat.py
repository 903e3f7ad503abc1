"""`/beat` and `/beat/<id>`: each beat schedule entry judged on time, late or missed, and whether beat runs.

Nothing here reads a schedule source or asks beat anything: the collector's beat watcher stores what the
sources hold and the fires it matched (webui.beat.watcher), and webui.beat.board judges them as of the
watcher's last pass. The table refreshes itself with htmx from the same template's `beat_board` block.
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, current_app, render_template, request
from markupsafe import Markup, escape

from webui.beat import board as beat_board
from webui.beat import schedule_spec
from webui.beat import status as beat_status
from webui.beat.entries import RECORD_LAG
from webui.views.formatting import duration

bp = Blueprint("beat", __name__)

TEMPLATE = "beat.html"
STRIP_FIRES = 20  # squares in a row's strip of recent fires
FIRE_HISTORY = 200  # fires on an entry's page
MAX_ID = 2**63 - 1

STATE_LABELS = {
    beat_status.ON_TIME: "on time", beat_status.LATE: "late", beat_status.MISSED: "missed",
    beat_status.WAITING: "waiting", beat_status.DISABLED: "disabled", beat_status.REMOVED: "removed",
    beat_status.UNKNOWN: "unknown", beat_status.DONE: "done",
}
# A fire's outcome (its task's state now) as a colour class of the strip and the history.
OUTCOME_CLASSES = {
    "SUCCESS": "ok", "FAILURE": "bad", "REJECTED": "bad", "RETRY": "warn", "REVOKED": "warn",
    "CANCELLED": "warn", "STARTED": "info", "RECEIVED": "info", "PENDING": "info",
}
SOURCE_LABELS = {
    "app": "the app (-A)", "file": "schedule file", "redbeat": "RedBeat", "django": "django-celery-beat",
}


# -- pure: words and numbers for the pages ---------------------------------------------------------------------

def state_title(status: beat_status.EntryStatus) -> str:
    """What the state badge means for this entry, in a sentence (the badge's tooltip, the detail page's text)."""
    if status.publish_failed is not None:
        return f"{_judged(status)} {publish_failed_text(status.publish_failed)}"
    return _judged(status)


def publish_failed_text(fire: beat_status.Fire) -> str:
    """Why a slot has no fire although beat tried: the publish raised (the companion's record of it)."""
    due = f" for the slot due {utc_text(fire.due)}" if fire.due is not None else ""
    return f"Publish failed: beat tried to send it at {utc_text(fire.at)}{due} and got {fire.failed}."


def _judged(status: beat_status.EntryStatus) -> str:
    state, grace = status.state, duration(status.grace)
    if state == beat_status.ON_TIME:
        return f"Fired when due; the next fire is not due yet (grace {grace})."
    if state == beat_status.LATE:
        return (f"Due {duration(status.overdue_by)} ago and not seen to fire, past its {grace} grace; the next "
                "slot has not passed yet.")
    if state == beat_status.MISSED:
        slots = f"{status.missed_count} slot{'s' if status.missed_count != 1 else ''}"
        return f"Due {duration(status.overdue_by)} ago: {slots} passed (grace {grace} each) without a fire."
    if state == beat_status.WAITING:
        return "Not seen to fire since it is watched; its first due time has not passed yet."
    if state == beat_status.DISABLED:
        return "Disabled in its source: beat does not run it, so it is not judged."
    if state == beat_status.REMOVED:
        return "No longer in its source: kept here with its history."
    if state == beat_status.DONE:
        return "A one-off schedule that has fired: nothing more is due."
    return "A schedule this monitor cannot compute (a custom schedule class): it is shown, not judged."


def drift_title(seconds: float) -> str:
    return (f"The recent fires all landed late against their slots, by {duration(seconds)} typically: an "
            "overloaded beat, a task blocking beat's loop before this one, or a timezone mix-up.")


def outcome_class(state: str | None) -> str:
    return OUTCOME_CLASSES.get((state or "").upper(), "none")


def utc_text(epoch: float | None) -> str:
    """An exact UTC time as text (for a title attribute, where a `<time>` element cannot go)."""
    if epoch is None:
        return "—"
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def lateness_text(seconds: float | None) -> str:
    """'+1.2 s' after its slot, '40 min 00 s early' before it, '—' when there is no slot to measure against."""
    if seconds is None:
        return "—"
    if seconds < 0:
        return f"{duration(-seconds)} early"
    return f"+{duration(seconds)}"


def breakable(name: str) -> Markup:
    """A dotted task name that may wrap after its dots (`<wbr>`), escaped, so a narrow column stays readable."""
    return Markup(".<wbr>").join(escape(part) for part in name.split("."))


def spec_fields(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """A schedule spec's fields as written in JSON, its kind first: what the watcher read from the source."""
    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, default=repr)
    return sorted(((str(k), text(v)) for k, v in spec.items()), key=lambda kv: (kv[0] != "kind", kv[0]))


def pretty(value: Any) -> str:
    """Arguments and options as indented JSON (values JSON cannot hold as their repr); the template escapes."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=repr)


@dataclass(frozen=True)
class FireRow:
    fire: beat_status.Fire
    due: float | None  # the slot this fire was for
    lateness: float | None  # seconds after `due`; negative: before it (a second beat, a manual run)


def fire_history(fires: Sequence[beat_status.Fire], spec: dict[str, Any], tz: str | None) -> list[FireRow]:
    """Each fire (newest first) with the time it was due: the due time the companion in beat stamped it with,
    else the schedule's next slot after the fire before it, as beat computes it from its last run (the oldest
    shown has no fire before it: its latest slot, if any)."""
    rows = []
    for index, fire in enumerate(fires):
        older = fires[index + 1] if index + 1 < len(fires) else None
        if fire.due is not None:
            due: float | None = fire.due
        elif older is not None:
            due = schedule_spec.next_due(spec, older.at, tz)
        else:
            due = schedule_spec.previous_slot(spec, fire.at, tz)
        rows.append(FireRow(fire, due, fire.at - due if due is not None else None))
    return rows


# -- routes ---------------------------------------------------------------------------------------------------

@bp.get("/beat")
def index() -> str:
    """Every watched entry with its state, beat's liveness and the sources read; only the board for htmx."""
    show_removed = request.args.get("removed", "0")
    if show_removed not in ("0", "1"):
        abort(400, description="removed is 0 or 1.")
    settings, tz = current_app.config["WEBUI_SETTINGS"], app_timezone_name()
    board = beat_board.load_board(settings, tz, include_removed=True)
    current = [e for e in board.entries if e.row.removed_at is None]
    removed = [e for e in board.entries if e.row.removed_at is not None]
    context = {**_helpers(), "board": board, "entries": current, "removed": removed,
               "show_removed": show_removed == "1", "settings": settings, "app_timezone": tz,
               # refresh as often as the watcher can have news, within reason
               "refresh": int(min(max(settings.beat_interval, 5), 60))}
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "beat-board":
        template = current_app.jinja_env.get_template(TEMPLATE)
        current_app.update_template_context(context)
        return "".join(template.blocks["beat_board"](template.new_context(context)))
    return render_template(TEMPLATE, page_title="Beat", **context)


@bp.get("/beat/<int:entry_id>")
def detail(entry_id: int) -> tuple[str, int] | str:
    """One entry: its definition, its state with grace and period, the scheduler's record, its fires."""
    settings = current_app.config["WEBUI_SETTINGS"]
    # An id past a 64-bit integer is no row, and SQLite refuses to even compare with it.
    found = beat_board.load_entry(entry_id, settings, app_timezone_name(), fires=FIRE_HISTORY) \
        if entry_id <= MAX_ID else None
    if found is None:
        return render_template("beat_entry.html", entry=None, entry_id=entry_id, page_title="Unknown beat entry",
                               **_helpers()), 404
    entry, board = found
    tz = app_timezone_name()
    return render_template(
        "beat_entry.html", entry=entry, board=board, page_title=entry.row.name, app_timezone=tz,
        history=fire_history(entry.status.fires, entry.schedule, tz),
        grace_override=beat_board.grace_for(entry.row.name, settings.beat_grace),
        record_lag=RECORD_LAG.get(entry.row.source, 0.0), fire_limit=FIRE_HISTORY, **_helpers())


def app_timezone_name() -> str:
    """The monitored app's timezone, in which beat computes crontab slots."""
    return str(current_app.extensions["webui_celery_app"].conf.timezone or "UTC")


def _helpers() -> dict[str, Any]:
    return {"state_labels": STATE_LABELS, "state_title": state_title, "drift_title": drift_title,
            "publish_failed_text": publish_failed_text,
            "outcome_class": outcome_class, "utc_text": utc_text, "lateness_text": lateness_text,
            "pretty": pretty, "spec_fields": spec_fields, "breakable": breakable, "source_labels": SOURCE_LABELS,
            "strip_fires": STRIP_FIRES, "link_tasks": "task.detail" in current_app.view_functions}
