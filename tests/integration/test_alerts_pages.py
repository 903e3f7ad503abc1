"""The alerts pages on a store filled as the alert runner fills it: incidents open first with where they stand,
one incident with its facts, timeline and messages; operators acknowledge, silence and unsilence it through the
forms (CSRF, audited); admins write rules and channels with the editors, whose refusals say what is wrong; rules
from the rules file are read-only; channel secrets never come back to a page; maintenance windows; the config
doctor; the overview's banner. Hostile text stays text everywhere.

Personas: alice is an admin, oscar an operator, vic a viewer. Incidents come from the alert runner itself
(webui.alerts.runner) running a test detector, or are written as rows when a test needs odd values.
"""
from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator

import pytest
from markupsafe import escape

from tests.support.store import close_database
from webui.alerts import rules
from webui.alerts.runner import AlertRunner
from webui.app import create_app
from webui.auth.passwords import hash_password
from webui.detect import registry
from webui.detect.findings import Finding
from webui.settings import default_settings
from webui.store.database import open_database
from webui.store.models import (
    AlertChannel,
    AlertIncident,
    AlertIncidentEvent,
    AlertMaintenance,
    AlertNotification,
    AlertRule,
    AuditLog,
)
from webui.store.schema import upgrade

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PASSWORD = "correct horse battery"
USERS = tuple(f"{name}:{hash_password(PASSWORD)}" for name in ("alice", "oscar", "vic"))
ROLES = ("admin=user:alice", "operator=user:oscar")
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
ORIGIN = {"Origin": "http://localhost"}
SLACK_URL = "https://hooks.slack.com/services/T0000/B0000/SeCrEtToKeN42"
FOUND: list[Finding] = []


@pytest.fixture(autouse=True)
def test_detector() -> Iterator[None]:
    registry.register(registry.Detector(
        "test_offline", "Test: offline", "worker", lambda ctx, params: list(FOUND),
        params={"minutes": registry.Param(5, "how long it has been gone", 1, 60),
                "strict": registry.Param(False, "count a restart as offline")},
        description="Workers that stopped sending heartbeats (a test stand-in)."))
    yield
    registry.DETECTORS.pop("test_offline", None)
    FOUND.clear()


def make_app(database_url, **settings):
    db = open_database(database_url)
    upgrade(db)
    close_database(db)
    return create_app(default_settings(broker="memory://", database=database_url, basic_auth=USERS, roles=ROLES,
                                       alert_default_rules=False, **settings), start_collector=False)


@pytest.fixture
def app(database_url):
    application = make_app(database_url)
    with application.app_context():
        yield application
    close_database(application.config["WEBUI_DATABASE"])


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()}


def page(app, path: str, user: str = "vic", status: int = 200) -> str:
    response = app.test_client().get(path, headers=basic(user))
    body = response.get_data(as_text=True)
    assert response.status_code == status, f"{path}: {response.status_code}\n{body[:800]}"
    return body


def browser(app, user: str):
    """A logged-in browser session: cookies, the Origin header on posts, the session's CSRF token."""
    client = app.test_client()
    response = client.post("/login", data={"username": user, "password": PASSWORD, "next": "/alerts"},
                           headers=ORIGIN)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    client.csrf = re.search(r'name="csrf_token" value="([^"]+)"',  # type: ignore[attr-defined]
                            client.get("/alerts").get_data(as_text=True)).group(1)
    return client


def submit(client, path: str, data: dict | None = None, *, csrf: bool = True):
    fields = dict(data or {})
    if csrf:
        fields["csrf_token"] = client.csrf
    return client.post(path, data=fields, headers=ORIGIN)


def text(response) -> str:
    return response.get_data(as_text=True)


def add_rule(name: str = "Workers gone", **fields) -> AlertRule:
    return rules.save(rules.RuleSpec(name, "test_offline", **{"severity": "critical", **fields}), "ui")


def run(app, findings: list[Finding], at: float) -> None:
    FOUND[:] = findings
    AlertRunner(app.config["WEBUI_DATABASE"], app.config["WEBUI_SETTINGS"], clock=lambda: at).run_pass()


def offline(host: str) -> Finding:
    return Finding("test_offline", host, host, f"{host} sent no heartbeat for 3 min", {"last_heartbeat": 1.5,
                   "pool": "prefork"}, f"/worker/{host}")


def add_incident(rule: AlertRule, subject: str = "w1@a", state: str = "open", **fields) -> AlertIncident:
    now = time.time()
    values = dict(rule_id=rule.id, subject=subject, scope=subject, state=state, severity=rule.severity,
                  summary=f"{subject} is offline", opened_at=now - 600, last_seen_at=now - 5,
                  resolved_at=now - 60 if state == "resolved" else None)
    return AlertIncident.create(**{**values, **fields})


def audited(action: str) -> list[tuple[str, str | None, str]]:
    return [(e.actor, e.target, e.result) for e in AuditLog.select().where(AuditLog.action == action)
            .order_by(AuditLog.id)]


# -- the incidents list and one incident --------------------------------------------------------------------

def test_open_incidents_come_first_with_where_they_stand_then_resolved_ones(app):
    rule = add_rule()
    run(app, [offline("w1@a")], 1000.0)
    run(app, [], 1015.0)
    run(app, [offline("w2@a"), offline("w3@a")], 1030.0)
    body = page(app, "/alerts")
    assert body.index('id="open-table"') < body.index('id="resolved-table"')
    open_part = body[body.index('id="open-table"'):body.index('id="resolved-table"')]
    assert "w2@a" in open_part and "w3@a" in open_part and "w1@a" not in open_part
    assert "w1@a" in body[body.index('id="resolved-table"'):]
    assert '<span class="sev sev-critical">critical</span>' in open_part
    assert '<span class="standing standing-new" title="nobody has acknowledged it yet">not acked</span>' in open_part
    assert "2 incidents, 2 critical" in body
    # the relative time (webui.js) and the exact one
    assert re.search(r'<time class="ts" datetime="1970-01-01T00:17:10.000\+00:00"', open_part)
    assert "1970-01-01 00:17:10 UTC" in open_part
    # the nav's badge counts the open ones
    assert re.search(r'>Alerts <span class="nav-badge" title="2 open incidents">2</span></a>', body)
    # filters: state, rule; a bad value is a 400 that says why
    assert "w1@a" not in page(app, "/alerts?state=open")
    resolved_only = page(app, "/alerts?state=resolved")
    assert 'id="open-table"' not in resolved_only and "w1@a" in resolved_only
    assert f'<option value="{rule.id}" selected>' in page(app, f"/alerts?rule={rule.id}")
    assert "no-open" in page(app, f"/alerts?rule={rule.id + 1}")
    assert "&#39;state&#39; is open or resolved" in page(app, "/alerts?state=maybe", status=400)
    assert "&#39;before&#39; must be a positive whole number" in page(app, "/alerts?before=x", status=400)
    # htmx refreshes the board only, from the same template's block
    fragment = text(app.test_client().get("/alerts?state=open", headers={
        **basic("vic"), "HX-Request": "true", "HX-Target": "incidents-board"}))
    assert "w2@a" in fragment and "<html" not in fragment and 'id="incidents-filter"' not in fragment
    assert 'hx-get="/alerts?state=open"' in page(app, "/alerts?state=open")


def test_resolved_incidents_are_paged_with_before(app):
    rule = add_rule()
    ids = [add_incident(rule, f"w{n}@a", "resolved").id for n in range(55)]
    body = page(app, "/alerts?state=resolved")
    assert body.count('class="incident-row is-resolved"') == 50
    older = re.search(r'href="/alerts\?state=resolved&amp;before=(\d+)" id="older-link"', body)
    assert older and int(older.group(1)) == ids[5]
    second = page(app, f"/alerts?state=resolved&before={ids[5]}")
    assert second.count('class="incident-row is-resolved"') == 5 and 'id="older-link"' not in second
    assert ">Newest</a>" in second


def test_an_incident_shows_its_facts_timeline_messages_and_a_link_to_its_subject(app):
    AlertChannel.create(name="oncall", kind="slack", config=json.dumps({"url": SLACK_URL}), created_at=1.0,
                        updated_at=1.0)
    add_rule(channels=["oncall"])
    run(app, [offline("w1@a")], 1000.0)
    incident = AlertIncident.get()
    AlertNotification.update(attempts=3, last_error="HTTP 500 from hooks.slack.com: oops").execute()
    body = page(app, f"/alerts/incidents/{incident.id}")
    assert "w1@a sent no heartbeat for 3 min" in body
    assert '<dt>last_heartbeat</dt><dd>1.5</dd>' in body and "<dt>pool</dt><dd>prefork</dd>" in body
    assert '<a href="/worker/w1@a" id="subject-link">/worker/w1@a</a>' in body
    assert re.search(r'class="event event-opened">\s*<span class="event-kind">opened</span>', body)
    notifications = body[body.index('id="incident-notifications"'):]
    assert ">oncall</a>" in notifications and ">opened<" in notifications
    assert '<span class="delivery delivery-retrying">retrying</span>' in notifications
    assert "HTTP 500 from hooks.slack.com: oops" in notifications
    assert SLACK_URL not in body and "SeCrEtToKeN42" not in body
    assert "Unknown incident" in page(app, "/alerts/incidents/999999", status=404)
    assert "Unknown incident" in page(app, f"/alerts/incidents/{'9' * 40}", status=404)


def test_the_subject_link_keeps_the_url_prefix_and_only_ever_points_inside_the_ui(database_url):
    application = make_app(database_url, url_prefix="/celery")
    with application.app_context():
        rule = add_rule()
        inside = add_incident(rule, "w1@a", link="/worker/w1@a")
        outside = add_incident(rule, "w2@a", link="//evil.example/x")
        script = add_incident(rule, "w3@a", link="javascript:alert(1)")
        assert 'href="/celery/worker/w1@a"' in page(application, f"/celery/alerts/incidents/{inside.id}")
        for row in (outside, script):
            body = page(application, f"/celery/alerts/incidents/{row.id}")
            assert 'id="subject-link"' not in body and "evil.example/x\"" not in body
        assert 'hx-get="/celery/alerts"' in page(application, "/celery/alerts")
    close_database(application.config["WEBUI_DATABASE"])


def test_hostile_values_stay_text_on_every_alerts_page(app):
    channel = AlertChannel.create(name=HOSTILE, kind="webhook", config=json.dumps({"url": "https://x.example/h"}),
                                  created_at=1.0, updated_at=1.0)
    rule = add_rule(HOSTILE, channels=[HOSTILE], scope=[HOSTILE])
    incident = add_incident(rule, HOSTILE, summary=HOSTILE, detail=json.dumps({HOSTILE: HOSTILE, "n": [HOSTILE]}),
                            acked_at=1.0, acked_by=HOSTILE)
    AlertIncidentEvent.create(incident_id=incident.id, at=1.0, kind=HOSTILE, actor=HOSTILE, detail=HOSTILE)
    AlertNotification.create(incident_id=incident.id, channel_id=channel.id, kind="opened", payload="{}",
                             created_at=1.0, next_attempt_at=1.0, last_error=HOSTILE)
    AlertMaintenance.create(name=HOSTILE, rules=json.dumps([HOSTILE]), starts_at=time.time() - 5,
                            ends_at=time.time() + 600, reason=HOSTILE, created_by=HOSTILE, created_at=1.0)
    for path in ("/alerts", f"/alerts/incidents/{incident.id}", "/alerts/rules", f"/alerts/rules/{rule.id}",
                 f"/alerts/rules/{rule.id}/edit", "/alerts/channels", f"/alerts/channels/{channel.id}",
                 f"/alerts/channels/{channel.id}/edit", "/alerts/maintenance"):
        body = page(app, path, "alice")
        assert "<script>alert(1)" not in body and "<img src=x" not in body, path
        assert str(escape(HOSTILE)) in body, path
    assert 'id="alerts-banner"' in page(app, "/", "alice")


# -- responding: acknowledge, silence, unsilence ------------------------------------------------------------

def test_operators_acknowledge_silence_and_unsilence_through_the_forms(app):
    add_rule()
    run(app, [offline("w1@a")], 1000.0)
    incident_id = AlertIncident.get().id
    path = f"/alerts/incidents/{incident_id}"
    oscar = browser(app, "oscar")
    body = text(oscar.get(path))
    assert 'id="ack-form"' in body and 'id="silence-form"' in body and 'id="unsilence-form"' not in body
    assert [b for b in re.findall(r'name="minutes" value="(\d+)">([^<]+)<', body)] == [
        ("15", "15 min"), ("60", "1 h"), ("240", "4 h"), ("1440", "24 h")]

    acked = submit(oscar, f"{path}/ack")
    assert acked.status_code == 303 and acked.headers["Location"].endswith(path)
    body = text(oscar.get(path))
    assert "Acknowledged." in body and "acked by oscar" in body and 'id="ack-form"' not in body

    again = submit(oscar, f"{path}/ack")
    assert again.status_code == 409 and "was acknowledged by oscar already" in text(again)

    assert submit(oscar, f"{path}/silence", {"minutes": "60"}).status_code == 303
    body = text(oscar.get(path))
    assert "Silenced for 1 h." in body and "standing-silenced" in body and 'id="unsilence-form"' in body
    row = AlertIncident.get_by_id(incident_id)
    assert row.silenced_by == "oscar" and 3590 < row.silenced_until - time.time() <= 3600

    custom = submit(oscar, f"{path}/silence", {"minutes": "90"})
    assert custom.status_code == 303
    assert 5390 < AlertIncident.get_by_id(incident_id).silenced_until - time.time() <= 5400
    assert submit(oscar, f"{path}/unsilence").status_code == 303
    assert AlertIncident.get_by_id(incident_id).silenced_until is None
    assert "Unsilenced." in text(oscar.get(path))

    timeline = [e.kind for e in AlertIncidentEvent.select().where(AlertIncidentEvent.incident_id == incident_id)
                .order_by(AlertIncidentEvent.id)]
    assert timeline == ["opened", "acked", "silenced", "silenced", "unsilenced"]
    target = f"incident {incident_id}"
    assert audited("incident.ack") == [("oscar", target, "ok"), ("oscar", target, "refused")]
    assert audited("incident.silence") == [("oscar", target, "ok"), ("oscar", target, "ok")]
    assert audited("incident.unsilence") == [("oscar", target, "ok")]


def test_a_refused_action_says_why_on_the_incident_page(app):
    rule = add_rule()
    resolved = add_incident(rule, state="resolved")
    current = add_incident(rule, "w2@a")
    oscar = browser(app, "oscar")
    refused = submit(oscar, f"/alerts/incidents/{resolved.id}/silence", {"minutes": "15"})
    assert refused.status_code == 409
    assert f"Incident {resolved.id} is resolved: there is nothing to silence." in text(refused)
    for minutes, words in (("0", "Silence for 1 to 10080 minutes, not 0"), ("soon", "Give a number of minutes"),
                           ("nan", "Give a number of minutes")):
        response = submit(oscar, f"/alerts/incidents/{current.id}/silence", {"minutes": minutes})
        assert response.status_code == 400 and words in text(response), minutes
    assert submit(oscar, f"/alerts/incidents/{current.id}/unsilence").status_code == 409
    assert submit(oscar, "/alerts/incidents/999999/ack").status_code == 404
    # a resolved incident can still be acknowledged, for the record, but offers no silence
    body = text(oscar.get(f"/alerts/incidents/{resolved.id}"))
    assert 'id="ack-form"' in body and 'id="silence-form"' not in body


def test_viewers_get_no_buttons_and_are_refused_and_a_form_needs_its_csrf_token(app):
    rule = add_rule()
    incident_id = add_incident(rule).id
    vic = browser(app, "vic")
    body = text(vic.get(f"/alerts/incidents/{incident_id}"))
    assert 'id="incident-actions"' not in body and "csrf_token" in body  # the logout form's
    refused = submit(vic, f"/alerts/incidents/{incident_id}/ack")
    assert refused.status_code == 403 and "This needs the operator role; yours is viewer." in text(refused)
    oscar = browser(app, "oscar")
    forged = submit(oscar, f"/alerts/incidents/{incident_id}/ack", csrf=False)
    assert forged.status_code == 403 and "CSRF token is missing" in text(forged)
    cross_site = oscar.post(f"/alerts/incidents/{incident_id}/ack", data={"csrf_token": oscar.csrf},
                            headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert AlertIncident.get_by_id(incident_id).acked_at is None
    assert audited("alerts.acknowledge") == [("vic", f"/alerts/incidents/{incident_id}/ack", "refused")]


# -- rules ----------------------------------------------------------------------------------------------------

def test_the_rules_list_and_a_rules_page_show_what_it_watches_and_its_incidents(app):
    rule = add_rule(scope=["w*@a"], params={"minutes": 10}, consecutive=3, renotify_minutes=30.0,
                    channels=["oncall", "gone"])
    AlertChannel.create(name="oncall", kind="slack", config=json.dumps({"url": SLACK_URL}), created_at=1.0,
                        updated_at=1.0)
    add_incident(rule, "w1@a")
    add_incident(rule, "w0@a", "resolved")
    body = page(app, "/alerts/rules")
    row = re.search(rf'<tr class="" id="rule-{rule.id}">.*?</tr>', body, re.DOTALL).group(0)
    assert ">Workers gone</a>" in row and ">Test: offline<" in row and "<code>w*@a</code>" in row
    assert "sev-critical" in row and "standing-on" in row and ">3<" in row and "every 30 min" in row
    assert 'oncall, <span class="channel-name missing"' in row and ">gone?</span>" in row and ">UI</span>" in row
    assert f'href="/alerts?rule={rule.id}&amp;state=open">1</a>' in row
    detail = page(app, f"/alerts/rules/{rule.id}")
    assert "after 3 evaluations in a row find it" in detail
    assert "gone (no such channel)" in detail
    params = detail[detail.index('id="rule-params"'):]
    assert "<code>minutes</code>" in params and "<strong>10</strong>" in params
    assert "how long it has been gone" in params
    history = detail[detail.index('id="rule-incidents"'):]
    assert history.index("w1@a") < history.index("w0@a")
    assert 'id="edit-rule"' not in detail  # vic
    assert 'id="edit-rule"' in page(app, f"/alerts/rules/{rule.id}", "alice")
    assert "Unknown rule" in page(app, "/alerts/rules/999999", status=404)


def test_admins_write_a_rule_with_the_editor(app):
    AlertChannel.create(name="oncall", kind="slack", config=json.dumps({"url": SLACK_URL}), created_at=1.0,
                        updated_at=1.0)
    alice = browser(app, "alice")
    form = text(alice.get("/alerts/rules/new?detector=test_offline"))
    assert '<option value="test_offline" selected>' in form
    assert 'name="param.minutes"' in form and 'placeholder="5"' in form and 'min="1"' in form and 'max="60"' in form
    assert 'name="param.strict"' in form and "Workers that stopped sending heartbeats" in form
    assert 'name="channels" value="oncall"' in form
    created = submit(alice, "/alerts/rules/new", {
        "name": "Billing workers gone", "detector": "test_offline", "scope": "billing-*\n\n  celery@b*  \n",
        "param.minutes": "10", "param.strict": "", "severity": "warning", "channels": "oncall",
        "consecutive": "2", "renotify": "45", "aggregate_min": "3", "enabled": "1"})
    assert created.status_code == 303, text(created)[:500]
    row = AlertRule.get(AlertRule.name == "Billing workers gone")
    spec = rules.spec_of(row)
    assert spec.scope == ["billing-*", "celery@b*"] and spec.params == {"minutes": 10, "aggregate_min": 3}
    assert (spec.severity, spec.channels, spec.consecutive, spec.renotify_minutes, spec.enabled) == (
        "warning", ["oncall"], 2, 45, True)
    assert row.managed_by == "ui" and created.headers["Location"].endswith(f"/alerts/rules/{row.id}")
    # the editor shows what is stored; a change keeps the rest
    edit = text(alice.get(f"/alerts/rules/{row.id}/edit"))
    assert 'value="Billing workers gone"' in edit and ">billing-*\ncelery@b*</textarea>" in edit
    assert 'name="param.minutes" value="10"' in edit and 'name="aggregate_min" value="3"' in edit
    assert 'name="channels" value="oncall" checked' in edit
    changed = submit(alice, f"/alerts/rules/{row.id}/edit", {
        "name": "Billing workers gone", "detector": "test_offline", "scope": "", "param.minutes": "",
        "param.strict": "true", "severity": "critical", "consecutive": "1", "renotify": "", "aggregate_min": ""})
    assert changed.status_code == 303
    spec = rules.spec_of(AlertRule.get_by_id(row.id))
    assert spec.params == {"strict": True} and spec.scope == [] and spec.enabled is False
    assert spec.renotify_minutes is None and spec.channels == []
    assert audited("alert_rule.create") == [("alice", "Billing workers gone", "ok")]
    assert audited("alert_rule.update") == [("alice", "Billing workers gone", "ok")]


@pytest.mark.parametrize(("change", "words"), [
    ({"param.minutes": "500"}, "Minutes must be between 1 and 60"),
    ({"param.minutes": "2.5"}, "Minutes must be a whole number"),
    ({"param.strict": "maybe"}, "Strict must be true or false"),
    ({"consecutive": "0"}, "Consecutive must be a whole number from 1 to 100"),
    ({"consecutive": "lots"}, "Consecutive (only after N in a row) must be a number, not &#39;lots&#39;"),
    ({"renotify": "0.5"}, "Renotify_minutes must be between 1 and 10080"),
    ({"aggregate_min": "0"}, "Aggregate_min must be a whole number of at least 1"),
    ({"name": ""}, "A rule needs a name of 1 to 255 characters"),
    ({"name": "Taken"}, "A rule named &#39;Taken&#39; exists already"),
    ({"detector": "nope"}, "Unknown detector &#39;nope&#39;"),
    ({"severity": "loud"}, "Severity must be one of info, warning, critical"),
])
def test_the_editor_shows_what_is_wrong_and_keeps_what_was_typed(app, change, words):
    add_rule("Taken")
    alice = browser(app, "alice")
    fields = {"name": "Mine", "detector": "test_offline", "scope": "w*", "param.minutes": "7", "severity": "info",
              "consecutive": "1", "enabled": "1", **change}
    refused = submit(alice, "/alerts/rules/new", fields)
    body = text(refused)
    assert refused.status_code == 400
    problems = body[body.index('id="rule-problems"'):body.index('id="rule-form"')]
    assert words in problems, problems
    assert '<textarea name="scope" rows="3" placeholder="tasks.billing.*">w*</textarea>' in body
    assert AlertRule.select().count() == 1
    assert audited("alert_rule.create")[0][2] == "refused"


def test_choosing_another_detector_swaps_its_parameters_in(app):
    fragment = text(app.test_client().get("/alerts/rules/params?detector=test_offline", headers={
        **basic("alice"), "HX-Request": "true"}))
    assert 'name="param.minutes"' in fragment and "<html" not in fragment
    unknown = app.test_client().get(f"/alerts/rules/params?detector={HOSTILE}", headers=basic("alice"))
    assert unknown.status_code == 400 and "Unknown detector" in text(unknown) and "<script>" not in text(unknown)
    form = page(app, "/alerts/rules/new", "alice")
    assert 'hx-get="/alerts/rules/params" hx-trigger="change" hx-target="#detector-params"' in form
    reference = form[form.index('id="detectors-reference"'):]
    assert "Test: offline" in reference and "<code>minutes</code> = 5" in reference


def test_only_admins_edit_rules(app):
    rule = add_rule()
    for path in ("/alerts/rules/new", f"/alerts/rules/{rule.id}/edit"):
        assert "needs the admin role; yours is operator" in page(app, path, "oscar", status=403)
    oscar = browser(app, "oscar")
    assert submit(oscar, "/alerts/rules/new", {"name": "x", "detector": "test_offline"}).status_code == 403
    assert submit(oscar, f"/alerts/rules/{rule.id}/delete", {"confirm": "1"}).status_code == 403
    assert submit(oscar, f"/alerts/rules/{rule.id}/enabled", {"enabled": "0"}).status_code == 403
    assert 'id="new-rule"' not in page(app, "/alerts/rules", "oscar")
    assert AlertRule.get_by_id(rule.id).enabled


def test_rules_are_switched_off_and_on_and_deleted_after_a_confirmation(app):
    rule = add_rule()
    incident_id = add_incident(rule).id
    alice = browser(app, "alice")
    assert submit(alice, f"/alerts/rules/{rule.id}/enabled", {"enabled": "0"}).status_code == 303
    assert not AlertRule.get_by_id(rule.id).enabled
    body = text(alice.get(f"/alerts/rules/{rule.id}"))
    assert "Rule &#39;Workers gone&#39; disabled." in body and ">Enable</button>" in body
    assert submit(alice, f"/alerts/rules/{rule.id}/enabled", {"enabled": "1"}).status_code == 303
    assert AlertRule.get_by_id(rule.id).enabled
    asked = submit(alice, f"/alerts/rules/{rule.id}/delete")
    assert asked.status_code == 200 and "Delete the rule &#39;Workers gone&#39;?" in text(asked)
    assert 'name="confirm" value="1"' in text(asked) and f'action="/alerts/rules/{rule.id}/delete"' in text(asked)
    assert AlertRule.get_or_none(AlertRule.id == rule.id) is not None
    deleted = submit(alice, f"/alerts/rules/{rule.id}/delete", {"confirm": "1"})
    assert deleted.status_code == 303 and AlertRule.get_or_none(AlertRule.id == rule.id) is None
    assert f"deleted rule {rule.id}" in text(alice.get(f"/alerts/incidents/{incident_id}"))
    assert [a for a, _, _ in audited("alert_rule.disable")] == ["alice"]
    assert audited("alert_rule.delete") == [("alice", "Workers gone", "ok")]


def test_rules_from_the_rules_file_are_read_only(database_url, tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "From Git"\ndetector = "test_offline"\nseverity = "critical"\n')
    application = make_app(database_url, alert_rules_file=str(path))
    with application.app_context():
        AlertRunner(application.config["WEBUI_DATABASE"], application.config["WEBUI_SETTINGS"]).prepare()
        rule = AlertRule.get(AlertRule.name == "From Git")
        body = page(application, f"/alerts/rules/{rule.id}", "alice")
        assert re.search(rf"Managed in <code>{re.escape(str(path))}</code>:\s+change it there", body)
        assert 'id="edit-rule"' not in body and 'id="delete-rule"' not in body and 'id="toggle-rule"' not in body
        assert ">rules file</span>" in page(application, "/alerts/rules", "alice")
        refused = page(application, f"/alerts/rules/{rule.id}/edit", "alice", status=409)
        assert f"This rule is managed in {path}: change it there" in refused
        alice = browser(application, "alice")
        assert submit(alice, f"/alerts/rules/{rule.id}/edit", {"name": "Mine", "detector": "test_offline"}
                      ).status_code == 409
        assert submit(alice, f"/alerts/rules/{rule.id}/enabled", {"enabled": "0"}).status_code == 409
        assert submit(alice, f"/alerts/rules/{rule.id}/delete", {"confirm": "1"}).status_code == 409
        assert AlertRule.get_by_id(rule.id).enabled and AlertRule.get_by_id(rule.id).name == "From Git"
    close_database(application.config["WEBUI_DATABASE"])


# -- channels -----------------------------------------------------------------------------------------------

def test_a_channel_secret_never_comes_back_to_a_page_once_saved(app):
    alice = browser(app, "alice")
    kinds = text(alice.get("/alerts/channels/new"))
    assert 'href="/alerts/channels/new?kind=slack"' in kinds and 'href="/alerts/channels/new?kind=pagerduty"' in kinds
    form = text(alice.get("/alerts/channels/new?kind=slack"))
    assert 'type="password" name="config.url"' in form
    created = submit(alice, "/alerts/channels/new", {"kind": "slack", "name": "oncall", "config.url": SLACK_URL,
                                                     "enabled": "1"})
    assert created.status_code == 303, text(created)[:500]
    channel = AlertChannel.get(AlertChannel.name == "oncall")
    assert json.loads(channel.config) == {"url": SLACK_URL}
    add_rule(channels=["oncall"])
    for user in ("alice", "oscar", "vic"):
        for path in ("/alerts/channels", f"/alerts/channels/{channel.id}", "/alerts/rules", "/alerts"):
            assert "SeCrEtToKeN42" not in page(app, path, user), (user, path)
    edit = text(alice.get(f"/alerts/channels/{channel.id}/edit"))
    assert "SeCrEtToKeN42" not in edit and "saved: leave blank to keep" in edit
    assert "<code>***</code>" in page(app, f"/alerts/channels/{channel.id}", "alice")
    # viewers see the name and the kind only
    viewer = page(app, f"/alerts/channels/{channel.id}", "vic")
    assert 'id="channel-settings"' not in viewer and ">Slack</span>" in viewer
    assert "<th>Settings</th>" not in page(app, "/alerts/channels", "vic")
    # a blank secret keeps the saved one; a refused form does not echo a typed one back
    kept = submit(alice, f"/alerts/channels/{channel.id}/edit", {"name": "oncall-slack", "config.url": ""})
    assert kept.status_code == 303
    channel = AlertChannel.get_by_id(channel.id)
    assert json.loads(channel.config) == {"url": SLACK_URL} and not channel.enabled
    assert rules.spec_of(AlertRule.get()).channels == ["oncall-slack"]  # the rename follows into the rule
    refused = submit(alice, f"/alerts/channels/{channel.id}/edit", {"name": "", "config.url": SLACK_URL + "x"})
    assert refused.status_code == 400 and "SeCrEtToKeN42" not in text(refused)
    assert "A channel needs a name" in text(refused)
    assert audited("alert_channel.create") == [("alice", "oncall", "ok")]
    assert [r for _, _, r in audited("alert_channel.update")] == ["ok", "refused"]


def test_the_channel_form_checks_with_the_channel_module(app):
    alice = browser(app, "alice")
    bad_url = submit(alice, "/alerts/channels/new", {"kind": "webhook", "name": "hook", "config.url": "ftp://x",
                                                     "config.headers": "Authorization: Bearer abc\nbroken"})
    assert bad_url.status_code == 400 and "Each extra header is a line" in text(bad_url)
    assert "Bearer abc" not in text(bad_url)
    bad = submit(alice, "/alerts/channels/new", {"kind": "email", "name": "mail", "config.host": "smtp.example.com",
                                                 "config.from": "nobody", "config.to": "a@example.com",
                                                 "config.username": "u"})
    body = text(bad)
    assert bad.status_code == 400
    assert "From must be an email address" in body and "Username and password go together" in body
    assert 'name="config.host"' in body and 'value="smtp.example.com"' in body
    good = submit(alice, "/alerts/channels/new", {
        "kind": "email", "name": "mail", "config.host": "smtp.example.com", "config.port": "2525",
        "config.security": "starttls", "config.from": "celery@example.com",
        "config.to": "a@example.com\nb@example.com", "config.username": "u", "config.password": "hunter2",
        "enabled": "1"})
    assert good.status_code == 303, text(good)[:600]
    config = json.loads(AlertChannel.get(AlertChannel.name == "mail").config)
    assert config == {"host": "smtp.example.com", "port": 2525, "security": "starttls", "from": "celery@example.com",
                      "to": ["a@example.com", "b@example.com"], "username": "u", "password": "hunter2"}
    channel_id = AlertChannel.get(AlertChannel.name == "mail").id
    shown = page(app, f"/alerts/channels/{channel_id}", "alice")
    assert "hunter2" not in shown and "smtp.example.com" in shown
    edit = text(alice.get(f"/alerts/channels/{channel_id}/edit"))
    assert "hunter2" not in edit and ">a@example.com\nb@example.com</textarea>" in edit
    assert 'name="clear.password"' in edit  # removing a login: clear the user name, tick this
    assert page(app, "/alerts/channels/new?kind=carrier-pigeon", "alice", status=400).count("Unknown kind") == 1
    assert "needs the admin role" in page(app, "/alerts/channels/new", "oscar", status=403)


def test_send_test_queues_a_message_and_the_page_shows_how_it_went(app):
    channel = AlertChannel.create(name="oncall", kind="slack", config=json.dumps({"url": SLACK_URL}),
                                  created_at=1.0, updated_at=1.0)
    vic = browser(app, "vic")
    assert submit(vic, f"/alerts/channels/{channel.id}/test").status_code == 403
    oscar = browser(app, "oscar")
    sent = submit(oscar, f"/alerts/channels/{channel.id}/test")
    assert sent.status_code == 303 and sent.headers["Location"].endswith(f"/alerts/channels/{channel.id}#deliveries")
    row = AlertNotification.get()
    assert (row.kind, row.channel_id, row.incident_id) == ("test", channel.id, None)
    assert json.loads(row.payload)["detail"] == {"requested_by": "oscar"}
    body = text(oscar.get(f"/alerts/channels/{channel.id}"))
    assert "Test message queued for oncall" in body
    assert '<span class="delivery delivery-queued">queued</span>' in body and 'hx-trigger="every 2s"' in body
    AlertNotification.update(attempts=1, failed_at=time.time(), last_error="HTTP 404 from hooks.slack.com: "
                             "no_service").execute()
    fragment = text(oscar.get(f"/alerts/channels/{channel.id}", headers={"HX-Request": "true",
                                                                          "HX-Target": "channel-deliveries"}))
    assert "delivery-failed" in fragment and "HTTP 404 from hooks.slack.com: no_service" in fragment
    assert 'hx-trigger' not in fragment and "<html" not in fragment  # tried: it stops refreshing
    assert "delivery-failed" in page(app, "/alerts/channels", "vic")
    assert audited("alert_channel.test")[-1] == ("oscar", "oncall", "ok")


def test_channels_are_deleted_after_a_confirmation(app):
    channel = AlertChannel.create(name="oncall", kind="slack", config=json.dumps({"url": SLACK_URL}),
                                  created_at=1.0, updated_at=1.0)
    add_rule(channels=["oncall"])
    alice = browser(app, "alice")
    asked = submit(alice, f"/alerts/channels/{channel.id}/delete")
    assert "1 rule(s) send to it (Workers gone)" in text(asked)
    assert AlertChannel.select().count() == 1
    assert submit(alice, f"/alerts/channels/{channel.id}/delete", {"confirm": "1"}).status_code == 303
    assert AlertChannel.select().count() == 0
    assert "Unknown channel" in page(app, f"/alerts/channels/{channel.id}", status=404)


# -- maintenance windows --------------------------------------------------------------------------------------

def test_operators_add_end_and_delete_maintenance_windows(app):
    add_rule()
    add_rule("Queue growing")
    oscar = browser(app, "oscar")
    added = submit(oscar, "/alerts/maintenance", {"name": "Deploy 2.4", "rules": "Workers*", "minutes": "30",
                                                   "reason": "rolling restart"})
    assert added.status_code == 303
    window = AlertMaintenance.get()
    assert json.loads(window.rules) == ["Workers*"] and window.created_by == "oscar"
    assert 1790 < window.ends_at - window.starts_at <= 1800
    body = text(oscar.get("/alerts/maintenance"))
    row = body[body.index(f'id="window-{window.id}"'):]
    assert "on now" in row and "rolling restart" in row and "1 rule matches" in row and ">End now</button>" in row
    later = submit(oscar, "/alerts/maintenance", {"name": "Broker upgrade", "starts": "2999-01-02T03:04",
                                                   "minutes": "120"})
    assert later.status_code == 303
    upcoming = AlertMaintenance.get(AlertMaintenance.name == "Broker upgrade")
    assert time.strftime("%Y-%m-%d %H:%M", time.gmtime(upcoming.starts_at)) == "2999-01-02 03:04"
    assert "every rule" in text(oscar.get("/alerts/maintenance"))
    for fields, words in (({"name": "x", "minutes": "0"}, "Say how long it lasts"),
                          ({"name": "x", "minutes": "10", "starts": "soon"}, "The start must be a date and time"),
                          ({"name": "", "minutes": "10"}, "A window needs a name"),
                          ({"name": "x", "minutes": "10", "starts": "2001-01-01T00:00"}, "the end is in the past")):
        refused = submit(oscar, "/alerts/maintenance", fields)
        assert refused.status_code == 400 and words in text(refused), fields
    assert submit(oscar, f"/alerts/maintenance/{window.id}/end").status_code == 303
    assert AlertMaintenance.get_by_id(window.id).ends_at <= time.time()
    assert submit(oscar, f"/alerts/maintenance/{window.id}/end").status_code == 409
    assert "Past windows" in text(oscar.get("/alerts/maintenance"))
    asked = submit(oscar, f"/alerts/maintenance/{upcoming.id}/delete")
    assert "Delete the maintenance window &#39;Broker upgrade&#39;?" in text(asked)
    assert submit(oscar, f"/alerts/maintenance/{upcoming.id}/delete", {"confirm": "1"}).status_code == 303
    assert AlertMaintenance.select().count() == 1
    vic = browser(app, "vic")
    assert submit(vic, "/alerts/maintenance", {"name": "x", "minutes": "10"}).status_code == 403
    assert 'id="window-form"' not in text(vic.get("/alerts/maintenance"))
    assert [a for a, _, r in audited("alert_maintenance.create") if r == "ok"] == ["oscar", "oscar"]
    assert audited("alert_maintenance.end") == [("oscar", "Deploy 2.4", "ok")]
    assert audited("alert_maintenance.delete") == [("oscar", "Broker upgrade", "ok")]


# -- the doctor and the overview -------------------------------------------------------------------------------

def test_the_config_doctor_page_shows_each_check_with_what_to_change(app):
    body = page(app, "/doctor")
    assert 'id="doctor-summary"' in body
    checks = re.findall(r'<article class="panel advice advice-(ok|warn|unknown)" id="advice-([a-z_]+)"', body)
    assert len(checks) >= 5 and {"task_events", "task_track_started"} <= {name for _, name in checks}
    order = [status for status, _ in checks]
    assert order == sorted(order, key=["warn", "unknown", "ok"].index)  # warnings first
    assert 'href="/doctor"' in page(app, "/alerts") and 'href="/doctor"' in page(app, "/broker")
    assert 'id="doctor-urgent-' not in body  # nothing to see, nothing to alarm about


def test_the_doctor_leads_with_a_red_banner_when_neither_events_nor_the_companion_run(app):
    from webui.store.models import CollectorStatus, Worker, WorkerInspection

    now = time.time()
    Worker.create(hostname="w1@h", online=True, first_seen=now - 60, last_seen=now)
    WorkerInspection.create(hostname="w1@h", at=now, data="{}")
    CollectorStatus.create(leader="c", started_at=now, heartbeat_at=now,
                           warning="No task events from workers that are running tasks: w1@h (12 tasks).")
    body = page(app, "/doctor")
    banner = body[body.index('id="doctor-urgent-task_events"'):]
    banner = banner[:banner.index("</div>")]
    assert 'class="banner banner-error"' in body and "Neither task events nor the companion" in banner
    assert "What to add: Start every worker with -E" in banner and "webui.agent.install(app)" in banner


def test_the_overview_says_how_many_incidents_are_open(app):
    assert 'id="alerts-banner"' not in page(app, "/")
    rule = add_rule(severity="warning")
    add_incident(rule, "w1@a")
    body = page(app, "/")
    assert re.search(r'class="banner banner-warn" role="status" id="alerts-banner">\s*<a href="/alerts">1 open '
                     r'incident</a>', body)
    critical = add_rule("Lost", severity="critical")
    add_incident(critical, "t1")
    add_incident(critical, "t2", state="resolved")
    body = page(app, "/")
    assert '<a href="/alerts">2 open incidents (1 critical)</a>' in body and "banner-error" in body


def test_the_rules_file_example_in_the_docs_is_one_the_monitor_accepts(app, tmp_path):
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "alerts.md").read_text()
    section = docs[docs.index("### The rules file"):]
    example = section[section.index("```toml\n") + len("```toml\n"):section.index("```\n", section.index("```toml"))]
    path = tmp_path / "rules.toml"
    path.write_text(example)
    specs, channels = rules.read_rules_file(str(path))
    assert [s.name for s in specs] == ["Billing tasks stalled", "Many lost tasks"]
    assert specs[1].params == {"aggregate_min": 5} and [c["kind"] for c in channels] == ["slack", "pagerduty"]
