"""Run the alert rules in the leading collector: detectors → findings → incidents → the notification outbox.

Every `detect_interval` seconds: each detector an enabled rule names runs once per distinct set of parameters,
its findings are filtered by each rule's scope, and webui.alerts.engine decides what opens, resolves or
reminds. One rule's changes are written in one transaction, outbox rows included, so a crash never sends a
notification for an incident that was not stored (nor stores one whose notification is lost). A detector that
fails is logged and its rules are skipped for that pass: their open incidents stay open rather than
resolving on no evidence.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from peewee import Database

from webui import fastjson
from webui.alerts import engine, notifier
from webui.alerts.rules import RULE_OPTIONS, apply_rules_file, ensure_defaults, matches_scope, spec_of
from webui.detect.findings import DetectContext, Finding
from webui.detect.registry import all_detectors
from webui.store.database import discard_connection
from webui.store.models import (
    AlertIncident,
    AlertIncidentEvent,
    AlertMaintenance,
    AlertPending,
    AlertRule,
)

log = logging.getLogger(__name__)

MAX_TEXT = 2000  # summary characters kept: a detector's line, not a log dump


@dataclass
class PassReport:
    at: float
    rules: int = 0
    opened: int = 0
    resolved: int = 0
    reminded: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # detector → why it failed this pass


class AlertRunner:
    def __init__(self, db: Database, settings: Any, *, celery_app: Any = None, app_timezone: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db, self.settings, self.celery_app, self.app_timezone = db, settings, celery_app, app_timezone
        self.clock = clock
        self.last_report: PassReport | None = None

    def prepare(self) -> None:
        """Once per term: the built-in rules and the rules file (a bad file was refused at start already)."""
        with self.db.atomic():
            if self.settings.alert_default_rules:
                created = ensure_defaults(self.clock())
                if created:
                    log.info("alerts: created the built-in rules %s", ", ".join(created))
            if self.settings.alert_rules_file:
                rules, channels = apply_rules_file(self.settings.alert_rules_file, self.clock())
                log.info("alerts: %d rules and %d channels from %s", rules, channels,
                         self.settings.alert_rules_file)

    def run_pass(self) -> PassReport:
        now = self.clock()
        report = PassReport(now)
        rules = list(AlertRule.select().where(AlertRule.enabled == True).order_by(AlertRule.id))  # noqa: E712
        windows = list(AlertMaintenance.select().where(AlertMaintenance.starts_at <= now,
                                                       AlertMaintenance.ends_at > now))
        context = DetectContext(self.db, now, self.settings, self.app_timezone, self.celery_app)
        cache: dict[str, list[Finding] | None] = {}
        for rule in rules:
            findings = self._findings(rule, context, cache, report)
            if findings is None:
                continue
            report.rules += 1
            self._apply(rule, findings, _muted(rule.name, windows), now, report)
        self._close_orphans({r.id for r in rules}, now, report)
        self.last_report = report
        return report

    def _close_orphans(self, enabled: set[int], now: float, report: PassReport) -> None:
        """Incidents of a rule that was disabled or deleted: nothing watches them any more, so they resolve,
        quietly, saying why (an incident left open forever would be a lie on the incidents page)."""
        with self.db.atomic():
            query = AlertIncident.select(AlertIncident.id).where(AlertIncident.state == "open")
            if enabled:
                query = query.where(AlertIncident.rule_id.not_in(list(enabled)))
            for incident in query:
                AlertIncident.update(state="resolved", resolved_at=now).where(
                    AlertIncident.id == incident.id).execute()
                _event(incident.id, now, "resolved", None, "its rule was disabled or deleted")
                report.resolved += 1

    # -- detection -------------------------------------------------------------------------------------
    def _findings(self, rule: AlertRule, context: DetectContext, cache: dict[str, list[Finding] | None],
                  report: PassReport) -> list[Finding] | None:
        detector = all_detectors().get(rule.detector)
        if detector is None:
            report.errors[rule.detector] = f"unknown detector {rule.detector!r}"
            return None
        spec = spec_of(rule)
        params = detector.resolve_params({k: v for k, v in spec.params.items() if k not in RULE_OPTIONS})
        key = f"{rule.detector}:{json.dumps(params, sort_keys=True)}"
        if key not in cache:
            try:
                cache[key] = detector.run(context, params)
            except Exception as exc:  # noqa: BLE001 - one broken detector must not stop the other rules
                log.warning("alerts: detector %s failed: %s", rule.detector, exc, exc_info=True)
                report.errors[rule.detector] = f"{type(exc).__name__}: {exc}"
                cache[key] = None
        found = cache[key]
        if found is None:
            return None
        return [f for f in found if matches_scope(spec.scope, f.scope)]

    # -- incidents -------------------------------------------------------------------------------------
    def _apply(self, rule: AlertRule, findings: list[Finding], muted: bool, now: float,
               report: PassReport) -> None:
        spec = spec_of(rule)
        state = engine.RuleState(rule.id, rule.name, spec.consecutive, spec.renotify_minutes,
                                 spec.params.get("aggregate_min"), muted)
        with self.db.atomic():
            open_rows = {i.id: i for i in AlertIncident.select().where(AlertIncident.rule_id == rule.id,
                                                                          AlertIncident.state == "open")}
            pending = [engine.Pending(p.subject, p.count, p.first_seen_at)
                       for p in AlertPending.select().where(AlertPending.rule_id == rule.id)]
            incidents = [engine.OpenIncident(i.id, i.subject, i.last_notified_at, i.acked_at, i.silenced_until)
                         for i in open_rows.values()]
            result = engine.step(state, findings, incidents, pending, now)
            for finding in result.open:
                incident = self._open(rule, finding, now)
                if result.notify_open:
                    self._notify(incident, rule, "opened", now)
                report.opened += 1
            for incident_id, finding in result.update:
                _follow(open_rows[incident_id], finding, now)
            for incident_id in result.remind:
                self._notify(open_rows[incident_id], rule, "reminder", now)
                report.reminded += 1
            for incident_id, notify in result.resolve:
                incident = open_rows[incident_id]
                AlertIncident.update(state="resolved", resolved_at=now).where(
                    AlertIncident.id == incident_id).execute()
                incident.state, incident.resolved_at = "resolved", now
                _event(incident_id, now, "resolved", None, None if notify else "resolved quietly (silenced or "
                       "under maintenance)")
                if notify:
                    self._notify(incident, rule, "resolved", now)
                report.resolved += 1
            AlertPending.delete().where(AlertPending.rule_id == rule.id).execute()
            for p in result.pending:
                AlertPending.create(rule_id=rule.id, subject=p.subject[:512], count=p.count,
                                    first_seen_at=p.first_seen_at, last_seen_at=now)

    def _open(self, rule: AlertRule, finding: Finding, now: float) -> AlertIncident:
        incident = AlertIncident.create(
            rule_id=rule.id, subject=finding.subject[:512], scope=finding.scope[:512], state="open",
            severity=rule.severity, summary=finding.summary[:MAX_TEXT], detail=fastjson.dumps(_detail(finding)),
            link=(finding.link or "")[:1024] or None, opened_at=finding.since or now, last_seen_at=now)
        _event(incident.id, now, "opened", None, finding.summary[:MAX_TEXT])
        log.info("alerts: incident %d opened by rule %r: %s", incident.id, rule.name, finding.summary)
        return incident

    def _notify(self, incident: AlertIncident, rule: AlertRule, kind: str, now: float) -> None:
        queued = notifier.enqueue(incident, rule, kind, now, self.settings.external_url)
        if queued:
            AlertIncident.update(last_notified_at=now, notifications=AlertIncident.notifications + queued).where(
                AlertIncident.id == incident.id).execute()


def _follow(incident: AlertIncident, finding: Finding, now: float) -> None:
    """An open incident keeps the newest wording and facts of its finding."""
    AlertIncident.update(summary=finding.summary[:MAX_TEXT], detail=fastjson.dumps(_detail(finding)),
                         last_seen_at=now).where(AlertIncident.id == incident.id).execute()


def _detail(finding: Finding) -> dict[str, Any]:
    return {**finding.detail, **({"value": finding.value} if finding.value is not None else {})}


def _event(incident_id: int, at: float, kind: str, actor: str | None, detail: str | None) -> None:
    AlertIncidentEvent.create(incident_id=incident_id, at=at, kind=kind, actor=actor, detail=detail)


def _muted(rule_name: str, windows: list[AlertMaintenance]) -> bool:
    for window in windows:
        patterns = fastjson.loads_as(window.rules, list)
        if not patterns or any(fnmatchcase(rule_name, str(p)) for p in patterns):
            return True
    return False


def alert_loop(db: Database, settings: Any, celery_app: Any, *, stop: threading.Event, alive: Callable[[], bool],
               app_timezone: str | None) -> None:
    """The leading collector's alert thread: rules every `detect_interval`, deliveries in a thread of their own."""
    runner = AlertRunner(db, settings, celery_app=celery_app, app_timezone=app_timezone)
    try:
        runner.prepare()
    except Exception as exc:  # noqa: BLE001 - rules still run; the start-up check already refused a bad file
        log.error("alerts: preparing the rules failed: %s", exc)
    term_over = threading.Event()  # deliveries stop with this term, not only with the collector
    delivery = threading.Thread(target=notifier.delivery_loop, args=(term_over,), name="webui-alert-delivery",
                                daemon=True)
    delivery.start()
    next_at = 0.0
    try:
        while not stop.is_set() and alive():
            if time.time() >= next_at:
                next_at = time.time() + settings.detect_interval
                try:
                    runner.run_pass()
                except Exception as exc:  # noqa: BLE001 - the next pass tries again
                    log.warning("alerts: evaluation failed: %s", exc, exc_info=True)
                    discard_connection(db)  # a connection that died mid-pass must not serve the next one
            stop.wait(min(0.5, settings.detect_interval))
    finally:
        term_over.set()
        delivery.join(15.0)
