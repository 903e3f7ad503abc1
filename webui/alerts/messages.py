"""What a notification says, built once as plain data; every channel renders the same dict.

`build_message` turns an incident and its rule into a JSON-able dict (stored in the outbox as the payload, so a
retry sends what was true when it was queued). `facts` and `render_text` are the shared wording: email sends
the text, Slack and Discord show the facts as fields, the generic webhook posts the dict itself.
"""
from __future__ import annotations

import datetime
from typing import Any

from webui import fastjson
from webui.store.models import AlertIncident, AlertRule

KINDS = ("opened", "reminder", "resolved", "test")
SEVERITIES = ("info", "warning", "error", "critical")

# What to check first, by the detector's name (first match wins). Detector names are ours (webui/detect/).
_DETECTOR_HINTS = (
    ("lost", "whether its worker was killed or restarted while running it (OOM killer, deploy, autoscaling)"),
    ("stalled", "whether it is stuck on I/O or a lock, or its worker stopped answering"),
    ("duplicate", "whether the task is safe to run twice, and the broker's redelivery (visibility timeout)"),
    ("offline", "whether the worker's host is up and its process is still running"),
    ("wedged", "whether its pool is stuck (a deadlock, a call without a timeout): its active tasks and their stack"),
    ("unattended", "whether any worker still consumes this queue"),
    ("queue", "whether enough workers consume this queue to keep up"),
    ("beat", "whether beat is running, and its log"),
    ("failure", "the exceptions of the recent failures"),
    ("exception", "the new exception's traceback, and what was deployed lately"),
    ("retry", "the exception the task retries on"),
    ("runtime", "what changed: a deploy, a slower dependency, larger inputs"),
    ("config", "the setting it names in the app's configuration"),
)
# Where to look, by the page the finding links to.
_PAGE_HINTS = (
    ("/task/", "the task page (events, worker, traceback)"),
    ("/worker/", "the worker page (heartbeats, pool, the tasks it was running)"),
    ("/queue/", "the queue page (depth, oldest message, consumers)"),
    ("/beat/", "the beat page (last and next run, whether beat is alive)"),
)


def build_message(incident: AlertIncident, rule: AlertRule, kind: str, external_url: str | None,
                  now: float) -> dict[str, Any]:
    """The message for `kind` (opened, reminder, resolved) of `incident`, as of `now`."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    detail = fastjson.loads_as(incident.detail, dict)
    what = detector_title(rule.detector)
    where = _where(incident.scope or incident.subject, detail)
    ended = incident.resolved_at if incident.resolved_at is not None else now
    severity = incident.severity or rule.severity or "warning"
    return {
        "kind": kind,
        "title": f"{_prefix(kind, severity)} {what}: {where}",
        "summary": incident.summary,
        "what": what,
        "where": where,
        "severity": severity,
        "rule": rule.name,
        "detector": rule.detector,
        "incident_id": incident.id,
        "subject": incident.subject,
        "scope": incident.scope,
        "opened_at": incident.opened_at,
        "resolved_at": incident.resolved_at,
        "duration": max(0.0, ended - incident.opened_at),
        "at": now,
        "link": absolute(external_url, f"/alerts/incidents/{incident.id}"),
        "look_at": look_at(rule.detector, incident.link),
        "look_at_link": absolute(external_url, incident.link),
        "detail": detail,
    }


def build_test_message(channel_name: str, external_url: str | None, now: float,
                       actor: str | None = None) -> dict[str, Any]:
    """What "send test" sends: the same shape as an incident's message, so the channel renders it the same way."""
    by = f" by {actor}" if actor else ""
    return {
        "kind": "test",
        "title": f"[TEST] Celery WebUI: channel {channel_name}",
        "summary": f"A test message sent{by} from Celery WebUI: if you read this, the channel {channel_name!r} "
                   "delivers.",
        "what": "Test message",
        "where": channel_name,
        "severity": "info",
        "rule": None,
        "detector": None,
        "incident_id": None,
        "subject": channel_name,
        "scope": None,
        "opened_at": now,
        "resolved_at": None,
        "duration": 0.0,
        "at": now,
        "link": absolute(external_url, "/alerts/channels"),
        "look_at": "Nothing: this is a test.",
        "look_at_link": None,
        "detail": {"requested_by": actor} if actor else {},
    }


def detector_title(name: str) -> str:
    """The detector's registered title ("Lost task"), else its name made readable ("task_lost" → "Task lost")."""
    from webui.detect.registry import all_detectors  # detectors register on import

    detector = all_detectors().get(name)
    if detector is not None:
        return detector.title
    return name.replace("_", " ").replace("-", " ").strip().capitalize() or "Alert"


def look_at(detector: str, link: str | None) -> str:
    """A short hint of what to check first, from the detector's name and the page its finding links to."""
    check = next((hint for key, hint in _DETECTOR_HINTS if key in detector), None)
    page = next((hint for prefix, hint in _PAGE_HINTS if link and link.startswith(prefix)), None)
    if check and page:
        return f"Check {check}: see {page}."
    if check:
        return f"Check {check}."
    if page:
        return f"See {page}."
    return "See the incident page."


def absolute(external_url: str | None, path: str | None) -> str | None:
    """`path` (inside the UI) on `external_url`; None without either, since a bare path helps nobody on call."""
    if not external_url or not path:
        return None
    return external_url.rstrip("/") + "/" + path.lstrip("/")


def facts(message: dict[str, Any]) -> list[tuple[str, str]]:
    """The labelled facts every channel shows beside the summary: how loud, which rule, since when, how long."""
    rows = [("Severity", str(message["severity"]).upper())]
    if message.get("rule"):
        rows.append(("Rule", str(message["rule"])))
    if message["kind"] == "test":
        rows.append(("Sent", format_time(message["at"])))
        return rows
    rows.append(("Since", format_time(message["opened_at"])))
    if message.get("resolved_at") is not None:
        rows.append(("Resolved", format_time(message["resolved_at"])))
        rows.append(("Lasted", format_duration(message["duration"])))
    else:
        rows.append(("Open for", format_duration(message["duration"])))
    rows.append(("Subject", str(message["subject"])))
    return rows


def render_text(message: dict[str, Any]) -> str:
    """The message as plain text (the email body; a fallback wherever rich formatting is not available)."""
    lines = [message["title"], "", str(message["summary"]), ""]
    lines += [f"{label}: {value}" for label, value in facts(message)]
    lines += ["", f"Look at: {message['look_at']}"]
    if message.get("look_at_link"):
        lines.append(f"  {message['look_at_link']}")
    if message.get("link"):
        lines += ["", f"Incident: {message['link']}" if message["kind"] != "test" else f"Open: {message['link']}"]
    elif message.get("incident_id") is not None:
        lines += ["", f"Incident #{message['incident_id']} (set external_url for a link here)."]
    if message.get("detail"):
        lines += ["", "Details:"]
        lines += [f"  {key}: {_short(value)}" for key, value in sorted(message["detail"].items())]
    lines += ["", "-- ", "Sent by Celery WebUI."]
    return "\n".join(lines) + "\n"


def format_time(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_time(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).isoformat(timespec="seconds")


def format_duration(seconds: float) -> str:
    """'45 s', '12 min', '3 h 05 min', '2 d 4 h': as precise as someone on call needs."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _prefix(kind: str, severity: str) -> str:
    if kind == "resolved":
        return "[RESOLVED]"
    if kind == "reminder":
        return f"[{severity.upper()}, STILL OPEN]"
    return f"[{severity.upper()}]"


def _where(place: str, detail: dict[str, Any]) -> str:
    # A task finding's scope is its task type; the worker it ran on says where.
    worker = detail.get("worker") or detail.get("hostname")
    if isinstance(worker, str) and worker and worker != place:
        return f"{place} on {worker}"
    return place


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else fastjson.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
