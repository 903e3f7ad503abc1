"""Generic webhook: POST the message itself as JSON, signed with HMAC-SHA256 when the channel has a secret.

Configuration: `url` (a secret: it may carry a token), optional `secret` (the HMAC key), optional `headers`
(extra request headers such as Authorization; their values are treated as secrets).

Headers sent:
- `X-WebUI-Event`: the message kind (opened, reminder, resolved, test).
- `X-WebUI-Delivery`: the outbox row's id; the same on every retry of one message, so a receiver can drop
  the duplicate a timed-out attempt may cause.
- `X-WebUI-Timestamp`: Unix seconds when this attempt was sent.
- `X-WebUI-Signature`: `sha256=` + hex HMAC-SHA256, keyed with the secret, of the timestamp, a dot, and the raw
  request body: `f"{timestamp}.".encode() + body`. Signing the timestamp lets a receiver refuse replays (reject
  a timestamp more than a few minutes old); only with a secret.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from webui import fastjson
from webui.alerts.channels import secret_values
from webui.alerts.channels.http import check_url, post

KIND = "webhook"
SECRETS = ("url", "secret", "headers")
RESERVED_HEADERS = ("content-type", "user-agent", "x-webui-event", "x-webui-delivery", "x-webui-timestamp",
                    "x-webui-signature")


def validate(config: dict[str, Any]) -> list[str]:
    problems = check_url(config.get("url"))
    secret = config.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        problems.append("secret must be a non-empty string (or left out)")
    headers = config.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in headers.items()):
        problems.append("headers must be a table of header names to string values")
    elif any(k.lower() in RESERVED_HEADERS for k in headers):
        problems.append(f"headers cannot set {', '.join(RESERVED_HEADERS)}")
    return problems


def send(config: dict[str, Any], message: dict[str, Any]) -> None:
    body = fastjson.dumps(message).encode()
    timestamp = str(int(time.time()))
    extra = dict(config.get("headers") or {})
    headers = {**extra, "X-WebUI-Event": str(message["kind"]), "X-WebUI-Timestamp": timestamp}
    if message.get("notification_id") is not None:
        headers["X-WebUI-Delivery"] = str(message["notification_id"])
    if config.get("secret"):
        headers["X-WebUI-Signature"] = "sha256=" + signature(config["secret"], timestamp, body)
    post(config["url"], body, headers=headers, secrets=[*secret_values(config, SECRETS), *extra.values()])


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `timestamp` + "." + `body`, keyed with `secret` (UTF-8)."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
