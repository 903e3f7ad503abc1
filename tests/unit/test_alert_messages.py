"""What a notification says: built once from the incident and its rule, as plain data every channel renders."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from webui.alerts import messages
from webui.alerts.messages import build_message, build_test_message, render_text
from webui.detect.registry import DETECTORS, Detector, all_detectors
from webui.store.models import AlertIncident, AlertRule

OPENED = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
URL = "https://celery.example.com/webui/"


@pytest.fixture(autouse=True)
def task_lost_detector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    all_detectors()  # the real ones first, so ours only stands in for a name they may not register yet
    monkeypatch.setitem(DETECTORS, "task_lost", Detector("task_lost", "Lost task", "task", lambda ctx, p: []))
    yield


def rule(**fields) -> AlertRule:
    values = {"id": 3, "name": "Lost tasks", "detector": "task_lost", "severity": "critical",
              "channels": '["ops"]', **fields}
    return AlertRule(**values)


def incident(**fields) -> AlertIncident:
    values = {"id": 42, "rule_id": 3, "subject": "5f0c-uuid", "scope": "tests.celeryapp.sleep", "state": "open",
              "severity": "critical", "summary": "Task tests.celeryapp.sleep [5f0c-uuid] was lost when w1@host "
              "went offline", "detail": json.dumps({"worker": "w1@host", "uuid": "5f0c-uuid"}),
              "link": "/task/5f0c-uuid", "opened_at": OPENED, "last_seen_at": OPENED, **fields}
    return AlertIncident(**values)


def test_an_opened_incident_says_what_where_since_when_and_links_back():
    message = build_message(incident(), rule(), "opened", URL, OPENED + 125)
    assert message["title"] == "[CRITICAL] Lost task: tests.celeryapp.sleep on w1@host"
    assert message["summary"] == incident().summary
    assert message["link"] == "https://celery.example.com/webui/alerts/incidents/42"
    assert message["look_at_link"] == "https://celery.example.com/webui/task/5f0c-uuid"
    assert message["look_at"].startswith("Check whether its worker was killed or restarted")
    assert "the task page" in message["look_at"]
    assert (message["kind"], message["severity"], message["rule"], message["detector"]) == (
        "opened", "critical", "Lost tasks", "task_lost")
    assert (message["opened_at"], message["resolved_at"], message["duration"]) == (OPENED, None, 125.0)
    assert message["detail"] == {"worker": "w1@host", "uuid": "5f0c-uuid"}
    assert json.loads(json.dumps(message)) == message  # it is stored as the outbox row's payload


def test_the_text_has_every_fact_someone_on_call_needs():
    text = render_text(build_message(incident(), rule(), "opened", URL, OPENED + 125))
    assert text.splitlines()[0] == "[CRITICAL] Lost task: tests.celeryapp.sleep on w1@host"
    assert "Since: 2027-01-15 08:00:00 UTC" in text
    assert "Open for: 2 min" in text
    assert "Rule: Lost tasks" in text
    assert "Incident: https://celery.example.com/webui/alerts/incidents/42" in text
    assert "  worker: w1@host" in text


def test_without_an_external_url_there_is_no_link_and_the_text_says_why():
    message = build_message(incident(), rule(), "opened", None, OPENED)
    assert message["link"] is None and message["look_at_link"] is None
    assert "Incident #42 (set external_url for a link here)." in render_text(message)


def test_a_resolved_incident_says_when_and_how_long_it_lasted():
    resolved = incident(state="resolved", resolved_at=OPENED + 3 * 3600 + 5 * 60)
    message = build_message(resolved, rule(), "resolved", URL, OPENED + 4 * 3600)
    assert message["title"] == "[RESOLVED] Lost task: tests.celeryapp.sleep on w1@host"
    assert message["duration"] == 3 * 3600 + 5 * 60
    assert ("Lasted", "3 h 05 min") in messages.facts(message)
    assert ("Resolved", "2027-01-15 11:05:00 UTC") in messages.facts(message)


def test_a_reminder_says_it_is_still_open():
    message = build_message(incident(), rule(), "reminder", URL, OPENED + 2 * 86400 + 3600)
    assert message["title"].startswith("[CRITICAL, STILL OPEN] Lost task:")
    assert ("Open for", "2 d 1 h") in messages.facts(message)


def test_a_worker_finding_names_the_worker_once():
    worker = incident(subject="w1@host", scope="w1@host", link="/worker/w1@host",
                      detail=json.dumps({"worker": "w1@host"}))
    message = build_message(worker, rule(detector="worker_offline", name="Offline"), "opened", URL, OPENED)
    assert message["title"].endswith(": w1@host")
    assert "the worker page" in message["look_at"]


@pytest.mark.parametrize(("detector", "link", "hint"), [
    ("stalled_task", "/task/x", "Check whether it is stuck on I/O or a lock"),
    ("queue_unattended", "/queue/mail", "Check whether any worker still consumes this queue"),
    ("queue_depth", "/queue/mail", "see the queue page"),
    ("beat_missed", "/beat/1", "see the beat page"),
    ("config_doctor", None, "Check the setting it names"),
    ("failure_spike", None, "Check the exceptions of the recent failures."),
    ("something_new", None, "See the incident page."),
])
def test_look_at_follows_the_detector_and_the_page_it_links_to(detector, link, hint):
    assert hint in messages.look_at(detector, link)


def test_an_unregistered_detector_still_gets_a_readable_title():
    message = build_message(incident(), rule(detector="made_up_check"), "opened", None, OPENED)
    assert message["title"].startswith("[CRITICAL] Made up check: ")


def test_the_test_message_has_the_same_shape_and_says_who_sent_it():
    test = build_test_message("ops-slack", URL, OPENED, actor="alice")
    real = build_message(incident(), rule(), "opened", URL, OPENED)
    assert set(test) == set(real)
    assert test["kind"] == "test" and test["incident_id"] is None
    assert test["title"] == "[TEST] Celery WebUI: channel ops-slack"
    assert "sent by alice" in test["summary"]
    assert test["link"] == "https://celery.example.com/webui/alerts/channels"


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        build_message(incident(), rule(), "escalated", URL, OPENED)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (59.9, "59 s"), (60, "1 min"), (3599, "59 min"),
                                               (3600, "1 h 00 min"), (90061, "1 d 1 h")])
def test_durations_read_as_people_say_them(seconds, text):
    assert messages.format_duration(seconds) == text
