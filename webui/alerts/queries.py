"""Read queries for the alerts pages and API: incidents (open first), one incident's timeline, rules with counts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peewee import fn

from webui import fastjson
from webui.store.models import AlertIncident, AlertIncidentEvent, AlertNotification, AlertRule

PAGE = 100
STATES = ("open", "resolved")


@dataclass
class IncidentView:
    incident: AlertIncident
    rule: AlertRule | None

    @property
    def detail(self) -> dict[str, Any]:
        return fastjson.loads_as(self.incident.detail, dict)

    @property
    def rule_name(self) -> str:
        return self.rule.name if self.rule is not None else f"deleted rule {self.incident.rule_id}"


def incidents(state: str | None = None, rule_id: int | None = None, before_id: int | None = None,
              limit: int = PAGE) -> list[IncidentView]:
    """Open incidents first (newest first), then resolved ones, keyset-paged by id within the chosen state."""
    query = AlertIncident.select()
    if state is not None:
        query = query.where(AlertIncident.state == state)
    if rule_id is not None:
        query = query.where(AlertIncident.rule_id == rule_id)
    if before_id is not None:
        query = query.where(AlertIncident.id < before_id)
    order = [AlertIncident.id.desc()] if state else [(AlertIncident.state == "open").desc(), AlertIncident.id.desc()]
    rows = list(query.order_by(*order).limit(limit))
    return _with_rules(rows)


def incident(incident_id: int) -> IncidentView | None:
    row = AlertIncident.get_or_none(AlertIncident.id == incident_id)
    return _with_rules([row])[0] if row is not None else None


def timeline(incident_id: int) -> list[AlertIncidentEvent]:
    return list(AlertIncidentEvent.select().where(AlertIncidentEvent.incident_id == incident_id)
                .order_by(AlertIncidentEvent.at, AlertIncidentEvent.id))


def notifications(incident_id: int) -> list[AlertNotification]:
    return list(AlertNotification.select().where(AlertNotification.incident_id == incident_id)
                .order_by(AlertNotification.id))


def open_counts() -> dict[int, int]:
    """Open incidents per rule id."""
    query: Any = (AlertIncident.select(AlertIncident.rule_id, fn.COUNT(AlertIncident.id))
                  .where(AlertIncident.state == "open").group_by(AlertIncident.rule_id).tuples())
    return {int(rule_id): int(count) for rule_id, count in query}


def open_summary() -> dict[str, int]:
    """Open incidents by severity, for the overview banner and the nav badge."""
    query: Any = (AlertIncident.select(AlertIncident.severity, fn.COUNT(AlertIncident.id))
                  .where(AlertIncident.state == "open").group_by(AlertIncident.severity).tuples())
    return {str(severity): int(count) for severity, count in query}


def rules() -> list[AlertRule]:
    return list(AlertRule.select().order_by(AlertRule.name))


def _with_rules(rows: list[AlertIncident]) -> list[IncidentView]:
    ids = {r.rule_id for r in rows}
    by_id = {r.id: r for r in AlertRule.select().where(AlertRule.id.in_(list(ids)))} if ids else {}
    return [IncidentView(row, by_id.get(row.rule_id)) for row in rows]
