"""`/api/v1/incidents`, `/api/v1/alert-rules` and `/api/v1/detectors`: incidents with their timelines, and the
rules that open them. Acknowledge and silence need the operator role, rule changes the admin role; all of it is
audited. Rules from the rules file (managed_by "file") are read-only here: Git is their source of truth."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify

from webui import audit
from webui.alerts import actions, editing, queries
from webui.alerts.rules import RuleError, RuleSpec, save, spec_of
from webui.api import params
from webui.api.errors import ApiError
from webui.auth.access import requires
from webui.detect.registry import all_detectors
from webui.store.models import AlertIncidentEvent, AlertNotification, AlertRule

bp = Blueprint("api_v1_alerts", __name__, url_prefix="/api/v1")


@bp.get("/incidents")
def incidents() -> Response:
    """Open incidents first, then resolved, newest first; `state`, `rule` (an id) and `before` (an id) filter."""
    state = params.text("state")
    if state is not None and state not in queries.STATES:
        raise ApiError(400, f"'state' must be one of {', '.join(queries.STATES)}; got {state!r}.")
    rule_id = params.integer("rule", None, 1, 10**18)
    before = params.integer("before", None, 1, 10**18)
    limit = params.integer("limit", queries.PAGE, 1, 500) or queries.PAGE
    views = queries.incidents(state, rule_id, before, limit)
    return jsonify({"incidents": [incident_dict(v) for v in views],
                    "next_before": views[-1].incident.id if len(views) == limit else None})


@bp.get(f"/incidents/<{params.ID}:incident_id>")
def incident(incident_id: int) -> Response:
    """One incident with its timeline and the notifications sent (or being retried) for it."""
    view = queries.incident(incident_id)
    if view is None:
        raise ApiError(404, f"Unknown incident {incident_id}")
    return jsonify({**incident_dict(view), "timeline": [_event(e) for e in queries.timeline(incident_id)],
                    "notifications": [_notification(n) for n in queries.notifications(incident_id)]})


@bp.post(f"/incidents/<{params.ID}:incident_id>/ack")
@requires("operator")
def acknowledge(incident_id: int) -> Response:
    return _act("incident.ack", incident_id, lambda actor: actions.acknowledge(incident_id, actor))


@bp.post(f"/incidents/<{params.ID}:incident_id>/silence")
@requires("operator")
def silence(incident_id: int) -> Response:
    """Silence for `minutes` (JSON body or form field; 1 to 10080)."""
    body = params.json_body()
    raw = body.get("minutes", params.text("minutes"))
    minutes = params.parse_number(None if raw is None else str(raw), "minutes", None, 1, actions.MAX_SILENCE_MINUTES)
    if minutes is None:
        raise ApiError(400, "'minutes' is required: how long to silence, 1 to 10080.")
    return _act("incident.silence", incident_id, lambda actor: actions.silence(incident_id, minutes, actor),
                minutes=minutes)


@bp.post(f"/incidents/<{params.ID}:incident_id>/unsilence")
@requires("operator")
def unsilence(incident_id: int) -> Response:
    return _act("incident.unsilence", incident_id, lambda actor: actions.unsilence(incident_id, actor))


@bp.get("/detectors")
def detectors() -> Response:
    """Every detector a rule can name, with its parameters and their defaults."""
    return jsonify({"detectors": [
        {"name": d.name, "title": d.title, "scope": d.scope_kind, "description": d.description,
         "params": {n: {"default": p.default, "help": p.help, "min": p.min, "max": p.max}
                    for n, p in d.params.items()}}
        for d in sorted(all_detectors().values(), key=lambda d: d.name)]})


@bp.get("/alert-rules")
def rules() -> Response:
    counts = queries.open_counts()
    return jsonify({"rules": [rule_dict(r, counts.get(r.id, 0)) for r in queries.rules()]})


@bp.get(f"/alert-rules/<{params.ID}:rule_id>")
def rule(rule_id: int) -> Response:
    row = _rule(rule_id)
    return jsonify(rule_dict(row, queries.open_counts().get(row.id, 0)))


@bp.post("/alert-rules")
@requires("admin")
def create_rule() -> Response:
    spec = _spec(params.json_body())
    if AlertRule.get_or_none(AlertRule.name == spec.name) is not None:
        raise ApiError(409, f"A rule named {spec.name!r} exists already.")
    row = _save(spec, None, "alert_rule.create")
    response = jsonify(rule_dict(row, 0))
    response.status_code = 201
    return response


@bp.put(f"/alert-rules/<{params.ID}:rule_id>")
@requires("admin")
def update_rule(rule_id: int) -> Response:
    row = _editable(rule_id)
    merged = {**_spec_dict(spec_of(row)), **params.json_body()}
    clash = AlertRule.get_or_none(AlertRule.name == merged.get("name"))
    if clash is not None and clash.id != rule_id:
        raise ApiError(409, f"A rule named {merged.get('name')!r} exists already.")
    row = _save(_spec(merged), rule_id, "alert_rule.update", managed_by=row.managed_by)
    return jsonify(rule_dict(row, queries.open_counts().get(row.id, 0)))


@bp.delete(f"/alert-rules/<{params.ID}:rule_id>")
@requires("admin")
def delete_rule(rule_id: int) -> Response:
    row = _editable(rule_id)
    editing.delete_rule(row)
    audit.record("alert_rule.delete", row.name)
    return jsonify({"message": f"Deleted rule {row.name!r}; its incidents are kept."})


# -- shapes ------------------------------------------------------------------------------------------------

def incident_dict(view: queries.IncidentView) -> dict[str, Any]:
    i = view.incident
    return {"id": i.id, "rule_id": i.rule_id, "rule": view.rule_name, "subject": i.subject, "scope": i.scope,
            "state": i.state, "severity": i.severity, "summary": i.summary, "detail": view.detail, "link": i.link,
            "opened_at": i.opened_at, "last_seen_at": i.last_seen_at, "resolved_at": i.resolved_at,
            "acked_at": i.acked_at, "acked_by": i.acked_by, "silenced_until": i.silenced_until,
            "silenced_by": i.silenced_by, "last_notified_at": i.last_notified_at, "notifications": i.notifications}


def rule_dict(row: AlertRule, open_incidents: int) -> dict[str, Any]:
    return {"id": row.id, **_spec_dict(spec_of(row)), "managed_by": row.managed_by, "created_at": row.created_at,
            "updated_at": row.updated_at, "open_incidents": open_incidents}


def _spec_dict(spec: RuleSpec) -> dict[str, Any]:
    return {"name": spec.name, "detector": spec.detector, "scope": spec.scope, "params": spec.params,
            "severity": spec.severity, "channels": spec.channels, "enabled": spec.enabled,
            "consecutive": spec.consecutive, "renotify_minutes": spec.renotify_minutes}


def _event(event: AlertIncidentEvent) -> dict[str, Any]:
    return {"at": event.at, "kind": event.kind, "actor": event.actor, "detail": event.detail}


def _notification(n: AlertNotification) -> dict[str, Any]:
    return {"id": n.id, "channel_id": n.channel_id, "kind": n.kind, "created_at": n.created_at,
            "attempts": n.attempts, "next_attempt_at": n.next_attempt_at, "sent_at": n.sent_at,
            "failed_at": n.failed_at, "last_error": n.last_error}


# -- helpers -----------------------------------------------------------------------------------------------

def _actor() -> str:
    identity = g.get("identity")
    return identity.label if identity is not None else "anonymous"


def _act(action: str, incident_id: int, do: Any, **detail: Any) -> Response:
    try:
        updated = do(_actor())
    except actions.ActionError as exc:
        audit.record(action, f"incident {incident_id}", "refused", reason=str(exc))
        raise ApiError(exc.status, str(exc)) from None
    audit.record(action, f"incident {incident_id}", **detail)
    view = queries.incident(updated.id)
    assert view is not None
    return jsonify(incident_dict(view))


def _rule(rule_id: int) -> AlertRule:
    row = AlertRule.get_or_none(AlertRule.id == rule_id)
    if row is None:
        raise ApiError(404, f"Unknown alert rule {rule_id}")
    return row


def _editable(rule_id: int) -> AlertRule:
    row = _rule(rule_id)
    if row.managed_by == "file":
        raise ApiError(409, f"Rule {row.name!r} comes from the alert rules file: change it there.")
    return row


def _spec(body: dict[str, Any]) -> RuleSpec:
    allowed = set(RuleSpec.__dataclass_fields__)
    extra = set(body) - allowed - {"id", "managed_by", "created_at", "updated_at", "open_incidents"}
    if extra:
        raise ApiError(400, f"Unknown fields {sorted(extra)}; a rule has {', '.join(sorted(allowed))}.")
    try:
        return RuleSpec(**{k: v for k, v in body.items() if k in allowed})
    except TypeError as exc:
        raise ApiError(400, f"A rule needs at least a name and a detector ({exc}).") from None


def _save(spec: RuleSpec, rule_id: int | None, action: str, managed_by: str = "ui") -> AlertRule:
    try:
        row = save(spec, "ui" if managed_by == "default" and rule_id is None else managed_by, rule_id=rule_id)
    except RuleError as exc:
        audit.record(action, spec.name, "refused", reason=str(exc))
        raise ApiError(400, str(exc)) from None
    audit.record(action, spec.name)
    return row
