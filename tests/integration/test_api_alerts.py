"""The alerts API: rules created, validated, changed and deleted by admins only; rules from the rules file are
read-only; incidents listed open first, acknowledged and silenced by operators, every action audited.

Personas: alice is an admin, oscar an operator, vic a viewer. The incidents are made by the alert runner itself
(webui.alerts.runner) from a test detector, against the same store.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tests.support.store import close_database
from webui.alerts.runner import AlertRunner
from webui.app import create_app
from webui.auth.passwords import hash_password
from webui.detect import registry
from webui.detect.findings import Finding
from webui.settings import default_settings
from webui.store.database import open_database
from webui.store.models import AuditLog
from webui.store.schema import upgrade

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PASSWORD = "correct horse battery"
USERS = tuple(f"{name}:{hash_password(PASSWORD)}" for name in ("alice", "oscar", "vic"))
ROLES = ("admin=user:alice", "operator=user:oscar")
FOUND: list[Finding] = []


@pytest.fixture(autouse=True)
def test_detector() -> Iterator[None]:
    registry.register(registry.Detector(
        "test_offline", "Test: offline", "worker", lambda ctx, params: list(FOUND),
        params={"minutes": registry.Param(5, "how long", 1, 60)}))
    yield
    registry.DETECTORS.pop("test_offline", None)
    FOUND.clear()


@pytest.fixture
def app(database_url, tmp_path):
    db = open_database(database_url)
    upgrade(db)
    close_database(db)
    settings = default_settings(broker="memory://", database=database_url, basic_auth=USERS, roles=ROLES,
                                alert_default_rules=False)
    application = create_app(settings, start_collector=False)
    yield application
    close_database(application.config["WEBUI_DATABASE"])


def auth(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def call(app, method: str, path: str, user: str = "alice", body=None):
    client = app.test_client()
    response = client.open(path, method=method, headers=auth(user),
                           data=json.dumps(body) if body is not None else None,
                           content_type="application/json" if body is not None else None)
    return response.status_code, response.get_json()


RULE = {"name": "Workers gone", "detector": "test_offline", "scope": ["w*"], "params": {"minutes": 10},
        "severity": "critical", "consecutive": 1}


def test_admins_create_rules_and_others_cannot(app):
    assert call(app, "POST", "/api/v1/alert-rules", "oscar", RULE)[0] == 403
    status, rule = call(app, "POST", "/api/v1/alert-rules", "alice", RULE)
    assert status == 201 and rule["name"] == "Workers gone" and rule["managed_by"] == "ui"
    assert call(app, "POST", "/api/v1/alert-rules", "alice", RULE)[0] == 409
    status, listed = call(app, "GET", "/api/v1/alert-rules", "vic")
    assert status == 200 and [r["name"] for r in listed["rules"]] == ["Workers gone"]
    status, changed = call(app, "PUT", f"/api/v1/alert-rules/{rule['id']}", "alice", {"severity": "info"})
    assert status == 200 and changed["severity"] == "info" and changed["params"] == {"minutes": 10}
    assert call(app, "DELETE", f"/api/v1/alert-rules/{rule['id']}", "vic")[0] == 403
    assert call(app, "DELETE", f"/api/v1/alert-rules/{rule['id']}", "alice")[0] == 200
    assert call(app, "GET", f"/api/v1/alert-rules/{rule['id']}", "vic")[0] == 404
    with app.app_context():
        actions = [(e.action, e.result) for e in AuditLog.select().order_by(AuditLog.id)]
    assert actions[0] == ("api_v1_alerts.create_rule", "refused")  # oscar
    assert {("alert_rule.create", "ok"), ("alert_rule.update", "ok"), ("alert_rule.delete", "ok")} <= set(actions)


@pytest.mark.parametrize(("change", "words"), [
    ({"detector": "nope"}, "unknown detector 'nope'"),
    ({"params": {"minutes": 500}}, "minutes must be between 1 and 60"),
    ({"params": {"hours": 1}}, "has no parameter 'hours'"),
    ({"severity": "loud"}, "severity must be one of"),
    ({"consecutive": 0}, "consecutive must be a whole number"),
    ({"scope": "w*"}, "scope is a list"),
    ({"colour": "red"}, "Unknown fields ['colour']"),
])
def test_a_bad_rule_is_refused_with_what_is_wrong(app, change, words):
    status, body = call(app, "POST", "/api/v1/alert-rules", "alice", {**RULE, **change})
    assert status == 400 and words in body["error"]


def test_incidents_open_first_and_operators_acknowledge_and_silence_them(app):
    status, rule = call(app, "POST", "/api/v1/alert-rules", "alice", RULE)
    runner = AlertRunner(app.config["WEBUI_DATABASE"], app.config["WEBUI_SETTINGS"], clock=lambda: 1000.0)
    with app.app_context():
        FOUND[:] = [Finding("test_offline", "w1@a", "w1@a", "w1@a is offline"),
                    Finding("test_offline", "x9@b", "x9@b", "out of scope")]
        assert runner.run_pass().opened == 1
        FOUND[:] = []
        runner.clock = lambda: 1015.0
        assert runner.run_pass().resolved == 1
        FOUND[:] = [Finding("test_offline", "w2@a", "w2@a", "w2@a is offline")]
        runner.clock = lambda: 1030.0
        runner.run_pass()
    status, listed = call(app, "GET", "/api/v1/incidents", "vic")
    assert status == 200
    assert [(i["subject"], i["state"]) for i in listed["incidents"]] == [("w2@a", "open"), ("w1@a", "resolved")]
    open_id = listed["incidents"][0]["id"]

    assert call(app, "POST", f"/api/v1/incidents/{open_id}/ack", "vic")[0] == 403
    status, acked = call(app, "POST", f"/api/v1/incidents/{open_id}/ack", "oscar")
    assert status == 200 and acked["acked_by"] == "oscar"
    assert call(app, "POST", f"/api/v1/incidents/{open_id}/ack", "oscar")[0] == 409
    assert call(app, "POST", f"/api/v1/incidents/{open_id}/silence", "oscar", {"minutes": 0})[0] == 400
    status, silenced = call(app, "POST", f"/api/v1/incidents/{open_id}/silence", "oscar", {"minutes": 30})
    assert status == 200 and silenced["silenced_by"] == "oscar"
    status, detail = call(app, "GET", f"/api/v1/incidents/{open_id}", "vic")
    assert [e["kind"] for e in detail["timeline"]] == ["opened", "acked", "silenced"]
    resolved_id = listed["incidents"][1]["id"]
    assert call(app, "POST", f"/api/v1/incidents/{resolved_id}/silence", "oscar", {"minutes": 5})[0] == 409
    assert call(app, "GET", "/api/v1/incidents?state=maybe", "vic")[0] == 400
    assert call(app, "GET", "/api/v1/incidents/999999", "vic")[0] == 404


def test_disabling_a_rule_resolves_its_open_incidents_saying_why(app):
    status, rule = call(app, "POST", "/api/v1/alert-rules", "alice", RULE)
    runner = AlertRunner(app.config["WEBUI_DATABASE"], app.config["WEBUI_SETTINGS"], clock=lambda: 1000.0)
    with app.app_context():
        FOUND[:] = [Finding("test_offline", "w1@a", "w1@a", "w1@a is offline")]
        assert runner.run_pass().opened == 1
    call(app, "PUT", f"/api/v1/alert-rules/{rule['id']}", "alice", {"enabled": False})
    with app.app_context():
        runner.clock = lambda: 1015.0
        assert runner.run_pass().resolved == 1
    incident = call(app, "GET", "/api/v1/incidents", "vic")[1]["incidents"][0]
    assert incident["state"] == "resolved"
    timeline = call(app, "GET", f"/api/v1/incidents/{incident['id']}", "vic")[1]["timeline"]
    assert timeline[-1]["detail"] == "its rule was disabled or deleted"


def test_rules_from_the_rules_file_are_read_only_here(app, tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "From Git"\ndetector = "test_offline"\nseverity = "critical"\n')
    settings = app.config["WEBUI_SETTINGS"].replace(alert_rules_file=str(path))
    with app.app_context():
        AlertRunner(app.config["WEBUI_DATABASE"], settings).prepare()
    rule = call(app, "GET", "/api/v1/alert-rules", "vic")[1]["rules"][0]
    assert rule["managed_by"] == "file"
    status, body = call(app, "PUT", f"/api/v1/alert-rules/{rule['id']}", "alice", {"enabled": False})
    assert status == 409 and "rules file" in body["error"]
