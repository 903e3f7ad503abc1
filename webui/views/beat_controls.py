"""`/controls/beat/<id>/<action>`: the beat page's and the entry page's buttons (webui.beat.controls acts).

As every control (webui.views.controls): a POST that first says what it will do and asks to confirm, then,
with `confirm=1`, acts, writes the audit entry and shows the outcome. The operator role, as for the other
controls that change what runs (revoke, retry, rate limits); CSRF from webui.auth.csrf.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for

from webui import audit
from webui.auth.access import requires
from webui.beat import board as beat_board
from webui.beat import controls as beat_controls
from webui.beat.board import BoardEntry
from webui.views.beat import SOURCE_LABELS, app_timezone_name, utc_text
from webui.views.controls import Page

bp = Blueprint("beat_controls", __name__)

LABELS = {beat_controls.RUN: "Run now", beat_controls.PAUSE: "Pause", beat_controls.RESUME: "Resume",
          beat_controls.SKIP: "Skip the next run"}
SHORT_LABELS = {**LABELS, beat_controls.SKIP: "Skip"}  # the schedules table's narrow column (its title says more)
TEMPLATE = "beat/control.html"


@bp.post("/controls/beat/<int(max=9223372036854775807):entry_id>/<any(run, pause, resume, skip):action>")
@requires("operator")
def act(entry_id: int, action: str) -> tuple[str, int]:
    """One beat control on one entry: a confirmation first, then the action and its outcome."""
    from_board = request.form.get("from") == "board"
    back = url_for("beat.index") if from_board else url_for("beat.detail", entry_id=entry_id)
    page = Page(action, back, "Back to the beat page" if from_board else "Back to the entry",
                fields=[("from", "board" if from_board else "entry")])
    found = beat_board.load_entry(entry_id, _settings(), app_timezone_name(), fires=beat_board.RECENT_FIRES)
    if found is None:
        page.problem = f"No beat entry number {entry_id} is stored."
        return _render(page, None, 404)
    entry = found[0]
    reason = beat_controls.unavailable(entry, action, app_timezone_name())
    if reason is not None:
        page.problem = f"{LABELS[action]} is not available for {entry.row.name}: {reason}."
        return _render(page, None, 409)
    if request.form.get("confirm") != "1":
        page.confirm = confirmation(entry, action, app_timezone_name())
        page.danger = action == beat_controls.PAUSE
        return _render(page, None, 200)
    try:
        result = beat_controls.perform(current_app.extensions["webui_celery_app"], _settings(), entry, action,
                                       app_timezone_name())
    except beat_controls.ControlRefused as exc:  # the entry changed between the confirmation and now
        page.problem = f"{LABELS[action]} is not available for {entry.row.name}: {exc}."
        return _render(page, None, 409)
    audit.record(beat_controls.AUDIT_ACTIONS[action], result.entry, "ok" if result.ok else "error",
                 **result.summary())
    return _render(page, result, 200 if result.ok else 503)


def confirmation(entry: BoardEntry, action: str, app_timezone: str | None) -> str:
    """What the action will do to this entry, in a sentence asked before acting."""
    row = entry.row
    source = SOURCE_LABELS.get(row.source, row.source)
    if action == beat_controls.RUN:
        queue = f" on queue {row.queue}" if row.queue else ""
        return (f"Send {row.task} now with this entry's arguments and options{queue}, as beat would. Its "
                "schedule is unchanged: beat still sends it when it is next due.")
    if action == beat_controls.PAUSE:
        static = (" An entry RedBeat took from the app's beat_schedule is enabled again when beat restarts."
                  if row.source == "redbeat" else "")
        return (f"Pause {row.name}: {source} keeps it disabled and beat stops sending it from its next tick, "
                f"until it is resumed.{static}")
    if action == beat_controls.RESUME:
        return (f"Resume {row.name}: beat sends it again from its next tick; if a run fell due while it was "
                "paused, beat sends that one at once.")
    slots = beat_controls.skip_slots(entry, row.next_due_at if row.source == "redbeat" else None, app_timezone)
    skipped, following = slots if slots is not None else (None, None)
    return (f"Skip the run of {row.name} due at {utc_text(skipped)}: beat counts it as done and next sends "
            f"it at {utc_text(following)}.")


def _render(page: Page, result: beat_controls.BeatResult | None, status: int) -> tuple[str, int]:
    label = LABELS[page.action]
    return render_template(TEMPLATE, page_title=label, page=page, label=label, beat_result=result,
                           utc_text=utc_text), status


def _settings() -> Any:
    return current_app.config["WEBUI_SETTINGS"]


@bp.app_context_processor
def _beat_control_helpers() -> dict[str, Any]:
    """For the beat pages' buttons: each action's label, an entry's buttons with why each is off (None: on),
    and those reasons once each with the buttons they hold back."""
    def actions(entry: BoardEntry) -> list[tuple[str, str | None]]:
        toggle = beat_controls.RESUME if not entry.row.enabled and entry.row.removed_at is None \
            else beat_controls.PAUSE
        return [(action, beat_controls.unavailable(entry, action, app_timezone_name()))
                for action in (beat_controls.RUN, toggle, beat_controls.SKIP)]

    def reasons(buttons: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
        held: dict[str, list[str]] = {}
        for action, off in buttons:
            if off:
                held.setdefault(off, []).append(LABELS[action] if not held.get(off) else LABELS[action].lower())
        return [(", ".join(labels), off) for off, labels in held.items()]
    return {"beat_control_labels": LABELS, "beat_control_short": SHORT_LABELS, "beat_control_actions": actions,
            "beat_control_reasons": reasons, "beat_control_in_code": beat_controls.IN_CODE}
