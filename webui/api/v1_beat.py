"""`/api/v1/beat/<id>/run|pause|resume|skip`: the beat controls for scripts (webui.beat.controls acts).

The operator role, audited as on the pages. 404: no such entry; 409: the action is not available for it (its
source can't store it, it is already paused…), with the reason; 503: the broker or the source could not be
written."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from webui import audit
from webui.api import params
from webui.api.errors import ApiError
from webui.auth.access import requires
from webui.beat import board as beat_board
from webui.beat import controls as beat_controls
from webui.views.beat import app_timezone_name

bp = Blueprint("api_v1_beat", __name__, url_prefix="/api/v1")


@bp.post(f"/beat/<{params.ID}:entry_id>/<any(run, pause, resume, skip):action>")
@requires("operator")
def act(entry_id: int, action: str) -> Response:
    """Run the entry now, pause or resume it, or skip its next run."""
    settings, tz = current_app.config["WEBUI_SETTINGS"], app_timezone_name()
    found = beat_board.load_entry(entry_id, settings, tz, fires=beat_board.RECENT_FIRES)
    if found is None:
        raise ApiError(404, f"Unknown beat entry {entry_id}")
    entry = found[0]
    try:
        result = beat_controls.perform(current_app.extensions["webui_celery_app"], settings, entry, action, tz)
    except beat_controls.ControlRefused as exc:
        audit.record(beat_controls.AUDIT_ACTIONS[action], f"{entry.row.source}:{entry.row.name}", "refused",
                     reason=str(exc))
        raise ApiError(409, f"{action} is not available for {entry.row.name}: {exc}.") from None
    audit.record(beat_controls.AUDIT_ACTIONS[action], result.entry, "ok" if result.ok else "error",
                 **result.summary())
    if result.error is not None:
        raise ApiError(503, f"Not done: {result.error}")
    return jsonify({"action": action, "entry_id": entry.row.id, "name": entry.row.name,
                    "source": entry.row.source, "enabled": bool(entry.row.enabled), "task_id": result.task_id,
                    "skipped": result.skipped, "next_run": result.next_run})
