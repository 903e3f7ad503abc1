"""Discord webhook: the Slack headline as the message, an embed with the same facts and colours.

Configuration: `url`, the webhook address (https://discord.com/api/webhooks/…; a secret).
"""
from __future__ import annotations

from typing import Any

from webui.alerts import messages
from webui.alerts.channels import secret_values, slack
from webui.alerts.channels.http import check_url, post_json

KIND = "discord"
SECRETS = ("url",)


def validate(config: dict[str, Any]) -> list[str]:
    return check_url(config.get("url"))


def send(config: dict[str, Any], message: dict[str, Any]) -> None:
    post_json(config["url"], payload(message), secrets=secret_values(config, SECRETS))


def payload(message: dict[str, Any]) -> dict[str, Any]:
    fields = [{"name": label, "value": value[:1024], "inline": True} for label, value in messages.facts(message)]
    fields.append({"name": "Look at", "value": _look_at(message)[:1024], "inline": False})
    embed: dict[str, Any] = {
        "title": message["title"][:256],
        "description": str(message["summary"])[:4096],
        "color": int(slack.color(message).lstrip("#"), 16),
        "fields": fields,
        "footer": {"text": "Celery WebUI"},
    }
    if message.get("link"):
        embed["url"] = message["link"]
    # allowed_mentions: a task name or an exception containing "@everyone" must not ping the whole server.
    return {"content": slack.headline(message)[:2000], "embeds": [embed], "allowed_mentions": {"parse": []}}


def _look_at(message: dict[str, Any]) -> str:
    link = message.get("look_at_link")
    return f"{message['look_at']} [open]({link})" if link else str(message["look_at"])
