"""Slack incoming webhook: the title as a header, the summary, the facts as fields, a button to the incident.

Configuration: `url`, the webhook address Slack gives (https://hooks.slack.com/services/…; a secret). Anything
that takes Slack's incoming-webhook payload (Mattermost, Rocket.Chat) works too.
"""
from __future__ import annotations

from typing import Any

from webui.alerts import messages
from webui.alerts.channels import secret_values
from webui.alerts.channels.http import check_url, post_json

KIND = "slack"
SECRETS = ("url",)
COLORS = {"critical": "#d0312d", "error": "#e8710a", "warning": "#f2c744", "info": "#3b82f6"}
RESOLVED_COLOR = "#2eb67d"


def validate(config: dict[str, Any]) -> list[str]:
    return check_url(config.get("url"))


def send(config: dict[str, Any], message: dict[str, Any]) -> None:
    post_json(config["url"], payload(message), secrets=secret_values(config, SECRETS))


def payload(message: dict[str, Any]) -> dict[str, Any]:
    """`text` is what Slack shows in notifications and where blocks are not supported."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(message["title"], 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(escape(str(message["summary"])), 3000)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{_cut(escape(value), 1900)}"}
                                       for label, value in messages.facts(message)][:10]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(_look_at(message), 3000)}]},
    ]
    if message.get("link"):
        label = "Open incident" if message.get("incident_id") is not None else "Open Celery WebUI"
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": label}, "url": message["link"]}]})
    return {"text": escape(headline(message)), "blocks": blocks}


def headline(message: dict[str, Any]) -> str:
    """One line: the title and the summary (Slack's notification text, Discord's message content)."""
    return f"{message['title']}: {message['summary']}"


def color(message: dict[str, Any]) -> str:
    if message["kind"] == "resolved":
        return RESOLVED_COLOR
    return COLORS.get(str(message["severity"]), COLORS["warning"])


def escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _look_at(message: dict[str, Any]) -> str:
    text = f"*Look at:* {escape(str(message['look_at']))}"
    if message.get("look_at_link"):
        text += f" <{message['look_at_link']}|open>"
    return text


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
