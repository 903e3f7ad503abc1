"""PagerDuty Events API v2: an incident opening triggers an alert, its resolution resolves the same alert.

Configuration: `routing_key` (the integration key of an "Events API v2" integration; a secret), optional `url`
(default https://events.pagerduty.com/v2/enqueue; EU accounts may use events.eu.pagerduty.com).

Every message of one incident carries the dedup key `webui-incident-<id>`, so reminders add to the alert
PagerDuty already has and "resolved" closes it. A test message triggers an `info` alert of its own.
"""
from __future__ import annotations

from typing import Any

from webui.alerts import messages
from webui.alerts.channels import secret_values
from webui.alerts.channels.http import check_url, post_json

KIND = "pagerduty"
SECRETS = ("routing_key",)
DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
# Ours → PagerDuty's (critical, error, warning, info).
SEVERITY = {"critical": "critical", "error": "error", "warning": "warning", "info": "info"}


def validate(config: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    key = config.get("routing_key")
    if not isinstance(key, str) or not key.strip():
        problems.append("routing_key is required (the integration key of an Events API v2 integration)")
    elif key != key.strip() or " " in key:
        problems.append("routing_key must not contain spaces")
    if "url" in config:
        problems += check_url(config["url"])
    return problems


def send(config: dict[str, Any], message: dict[str, Any]) -> None:
    post_json(config.get("url") or DEFAULT_URL, event(config["routing_key"], message),
              secrets=secret_values(config, SECRETS))


def dedup_key(message: dict[str, Any]) -> str:
    if message.get("incident_id") is not None:
        return f"webui-incident-{message['incident_id']}"
    return f"webui-test-{int(message['at'])}"


def event(routing_key: str, message: dict[str, Any]) -> dict[str, Any]:
    """The Events v2 body: `resolve` for a resolved incident (PagerDuty needs no payload then), else `trigger`."""
    if message["kind"] == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key(message)}
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(message),
        "payload": {
            "summary": f"{message['what']}: {message['summary']}"[:1024],
            "source": str(message["where"])[:255],
            "severity": SEVERITY.get(str(message["severity"]), "warning"),
            "timestamp": messages.iso_time(message["opened_at"]),
            "component": message.get("scope"),
            "group": message.get("rule"),
            "class": message.get("detector"),
            # The finding's facts, then ours (which win on a clash of names).
            "custom_details": {
                **(message.get("detail") or {}), "rule": message.get("rule"), "subject": message.get("subject"),
                "since": messages.format_time(message["opened_at"]), "look_at": message["look_at"]},
        },
        "client": "Celery WebUI",
    }
    links = [{"href": message["link"], "text": "Incident in Celery WebUI"}] if message.get("link") else []
    if message.get("look_at_link"):
        links.append({"href": message["look_at_link"], "text": "Look at"})
    if links:
        body["links"] = links
        body["client_url"] = message["link"] or message["look_at_link"]
    body["payload"] = {k: v for k, v in body["payload"].items() if v is not None}
    return body
