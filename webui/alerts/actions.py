"""What people do to incidents: acknowledge ("I'm on it": no more reminders), silence for a while, unsilence.

Each writes the incident, a timeline event with the actor, and is audited by the caller's route. A resolved
incident can still be acknowledged (for the record) but not silenced: there is nothing left to quieten.
"""
from __future__ import annotations

import time

from webui.store.models import AlertIncident, AlertIncidentEvent

MAX_SILENCE_MINUTES = 7 * 1440


class ActionError(ValueError):
    """The action does not apply (unknown incident, already resolved, bad duration); says why."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def acknowledge(incident_id: int, actor: str, now: float | None = None) -> AlertIncident:
    incident = _incident(incident_id)
    now = time.time() if now is None else now
    if incident.acked_at is not None:
        raise ActionError(f"incident {incident_id} was acknowledged by {incident.acked_by} already")
    AlertIncident.update(acked_at=now, acked_by=actor).where(AlertIncident.id == incident_id).execute()
    AlertIncidentEvent.create(incident_id=incident_id, at=now, kind="acked", actor=actor)
    return _incident(incident_id)


def silence(incident_id: int, minutes: float, actor: str, now: float | None = None) -> AlertIncident:
    incident = _incident(incident_id)
    if incident.state != "open":
        raise ActionError(f"incident {incident_id} is resolved: there is nothing to silence")
    if not 1 <= minutes <= MAX_SILENCE_MINUTES:
        raise ActionError(f"silence for 1 to {MAX_SILENCE_MINUTES} minutes, not {minutes:g}", 400)
    now = time.time() if now is None else now
    until = now + minutes * 60.0
    AlertIncident.update(silenced_until=until, silenced_by=actor).where(AlertIncident.id == incident_id).execute()
    AlertIncidentEvent.create(incident_id=incident_id, at=now, kind="silenced", actor=actor,
                              detail=f"for {minutes:g} minutes")
    return _incident(incident_id)


def unsilence(incident_id: int, actor: str, now: float | None = None) -> AlertIncident:
    incident = _incident(incident_id)
    now = time.time() if now is None else now
    if incident.silenced_until is None or incident.silenced_until <= now:
        raise ActionError(f"incident {incident_id} is not silenced")
    AlertIncident.update(silenced_until=None, silenced_by=None).where(AlertIncident.id == incident_id).execute()
    AlertIncidentEvent.create(incident_id=incident_id, at=now, kind="unsilenced", actor=actor)
    return _incident(incident_id)


def _incident(incident_id: int) -> AlertIncident:
    incident = AlertIncident.get_or_none(AlertIncident.id == incident_id)
    if incident is None:
        raise ActionError(f"no incident {incident_id}", 404)
    return incident
