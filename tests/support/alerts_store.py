"""Alerts written straight into a store, as the alert runner and the notifier would have: rules (built-in,
UI-made and file-managed), channels, incidents open and resolved with their timelines and messages, and a
maintenance window. For the alerts pages' browser tests, which look at what is stored with no collector."""
from __future__ import annotations

import json
import time
from typing import Any

from tests.support.store import close_database
from webui.alerts import rules
from webui.store.database import open_database
from webui.store.models import (
    AlertChannel,
    AlertIncident,
    AlertIncidentEvent,
    AlertMaintenance,
    AlertNotification,
    AlertRule,
)
from webui.store.schema import upgrade

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
MODELS = (AlertChannel, AlertIncident, AlertIncidentEvent, AlertMaintenance, AlertNotification, AlertRule)


def fill_alerts(database_url: str) -> dict[str, int]:
    """A lived-in alerts store; returns the ids a test navigates to."""
    db = open_database(database_url)
    upgrade(db)
    try:
        with db.bind_ctx(MODELS), db.connection_context():
            return _fill(time.time())
    finally:
        close_database(db)


def _fill(now: float) -> dict[str, int]:
    slack = _channel("oncall-slack", "slack", {"url": "https://hooks.slack.com/services/T0/B0/SECRET"}, now)
    mail = _channel("ops-mail", "email", {"host": "smtp.example.com", "from": "celery@example.com",
                                          "to": ["ops@example.com"], "username": "ops", "password": "hunter2"}, now)
    _channel(HOSTILE, "webhook", {"url": "https://hooks.example.com/x"}, now)
    lost = _rule("Lost tasks", "task_lost", "critical", "default", channels=["oncall-slack", "ops-mail"])
    offline = _rule("Worker offline", "worker_offline", "critical", "default", consecutive=2,
                    channels=["oncall-slack"], renotify_minutes=60.0)
    rising = _rule("Queue growing", "queue_rising", "warning", "ui", scope=["billing*", "celery"],
                   params={"minutes": 15}, channels=["ops-mail"], renotify_minutes=30.0)
    exceptions = _rule("New exception", "new_exception", "info", "default")
    _rule("Payments stalled", "task_stalled", "critical", "file", scope=["payments.*"], channels=["gone-channel"])
    hostile = _rule(HOSTILE, "failure_rate", "warning", "ui", scope=[HOSTILE])
    _rule("Beat down", "beat_down", "critical", "default", enabled=False)

    worker = _incident(offline, "celery@worker-3", "celery@worker-3 sent no heartbeat for 4 min 10 s (last "
                       "seen at 14:02:11 UTC); 3 tasks were running on it", now - 1800, now - 12,
                       {"last_heartbeat_at": now - 1810, "active_tasks": 3, "pool": "prefork", "concurrency": 8},
                       "/worker/celery@worker-3", acked_at=now - 1500, acked_by="oscar")
    queue = _incident(rising, "billing", "Queue billing rose from 120 to 4,380 messages in 15 min with 2 "
                      "consumers", now - 900, now - 12, {"depth": 4380, "rise": 4260, "consumers": 2},
                      "/queue/billing", silenced_until=now + 3000, silenced_by="oscar")
    task = _incident(lost, "5f0c2a9e-8d1b-4c7e-9a43-2b6d8e1f0a77", "tasks.billing.charge_card "
                     "5f0c2a9e… was running on celery@worker-3 when it went offline: lost", now - 600, now - 12,
                     {"task": "tasks.billing.charge_card", "worker": "celery@worker-3", "runtime_seconds": 41.5},
                     "/task/5f0c2a9e-8d1b-4c7e-9a43-2b6d8e1f0a77")
    _incident(exceptions, "tasks.reports.build:KeyError", "tasks.reports.build raised KeyError('region'), an "
              "exception not seen in the last 7 days", now - 300, now - 12, {"exception": "KeyError('region')"},
              "/tasks?name=tasks.reports.build")
    strange = _incident(hostile, HOSTILE, HOSTILE, now - 200, now - 12, {HOSTILE: HOSTILE}, HOSTILE)
    for n in range(6):
        _incident(lost, f"9a1b{n}c2d-0000-4000-8000-00000000000{n}", f"tasks.export.nightly 9a1b{n}c2d… lost",
                  now - 86400 + n * 3600, now - 86000 + n * 3600, {}, None, state="resolved",
                  resolved_at=now - 85000 + n * 3600)

    _event(worker, now - 1800, "opened", None, "celery@worker-3 sent no heartbeat for 2 min 05 s")
    _event(worker, now - 1799, "notified", None, "opened message sent to oncall-slack (slack)")
    _event(worker, now - 1500, "acked", "oscar", None)
    _event(queue, now - 900, "opened", None, "Queue billing rose from 120 to 2,010 messages in 15 min")
    _event(queue, now - 880, "delivery_failed", None, "opened message to ops-mail (email) not delivered after 8 "
           "attempts: SMTP smtp.example.com:587: 535 5.7.8 Authentication credentials invalid")
    _event(queue, now - 600, "silenced", "oscar", "for 60 minutes")
    _event(task, now - 600, "opened", None, None)
    _event(strange, now - 200, HOSTILE, HOSTILE, HOSTILE)
    _notification(worker, slack, "opened", now - 1800, sent_at=now - 1799, attempts=1)
    _notification(worker, slack, "reminder", now - 60, attempts=2, last_error="HTTP 503 from hooks.slack.com: "
                  "service unavailable", next_attempt_at=now + 90)
    _notification(queue, mail, "opened", now - 900, attempts=8, failed_at=now - 880,
                  last_error="SMTP smtp.example.com:587: 535 5.7.8 Authentication credentials invalid")
    _notification(task, slack, "opened", now - 600, sent_at=now - 598, attempts=1)
    _notification(None, slack, "test", now - 4000, sent_at=now - 3999, attempts=1)
    AlertMaintenance.create(name="Deploy 2.4", rules=json.dumps(["Queue*"]), starts_at=now - 300,
                            ends_at=now + 1500, reason="rolling restart of the billing workers", created_by="oscar",
                            created_at=now - 300)
    AlertMaintenance.create(name="Broker upgrade", rules=json.dumps([]), starts_at=now + 86400,
                            ends_at=now + 90000, reason=None, created_by="alice", created_at=now - 60)
    return {"worker_incident": worker.id, "queue_incident": queue.id, "task_incident": task.id,
            "hostile_incident": strange.id, "rising_rule": rising.id, "file_rule": _id("Payments stalled"),
            "slack": slack.id, "mail": mail.id}


def _channel(name: str, kind: str, config: dict[str, Any], now: float) -> AlertChannel:
    return AlertChannel.create(name=name, kind=kind, config=json.dumps(config), created_at=now - 86400 * 3,
                               updated_at=now - 86400)


def _rule(name: str, detector: str, severity: str, managed_by: str, **fields: Any) -> AlertRule:
    return rules.save(rules.RuleSpec(name, detector, severity=severity, **fields), managed_by,
                      now=time.time() - 86400 * 2)


def _id(name: str) -> int:
    return int(AlertRule.get(AlertRule.name == name).id)


def _incident(rule: AlertRule, subject: str, summary: str, opened_at: float, last_seen_at: float,
              detail: dict[str, Any], link: str | None, state: str = "open", **fields: Any) -> AlertIncident:
    return AlertIncident.create(rule_id=rule.id, subject=subject, scope=subject, state=state, severity=rule.severity,
                                summary=summary, detail=json.dumps(detail), link=link, opened_at=opened_at,
                                last_seen_at=last_seen_at, notifications=1, last_notified_at=opened_at, **fields)


def _event(incident: AlertIncident, at: float, kind: str, actor: str | None, detail: str | None) -> None:
    AlertIncidentEvent.create(incident_id=incident.id, at=at, kind=kind, actor=actor, detail=detail)


def _notification(incident: AlertIncident | None, channel: AlertChannel, kind: str, created_at: float,
                  **fields: Any) -> None:
    AlertNotification.create(incident_id=incident.id if incident else None, channel_id=channel.id, kind=kind,
                             payload="{}", created_at=created_at,
                             next_attempt_at=fields.pop("next_attempt_at", created_at), **fields)
