"""Email over SMTP: the title as the subject, the plain-text rendering as the body.

Configuration: `host`, `port` (default 587 for starttls, 465 for ssl, 25 for none), `security` ("starttls", the
default; "ssl"; "none"), `username` and `password` (a secret; both or neither), `from`, `to` (a list of
addresses, or one string with commas), `timeout` (seconds per SMTP step, default 20), `ca_file` (a CA bundle
to trust instead of the system's, for a relay with a private certificate).

An incident's later messages (reminders, resolved) refer to its first one (In-Reply-To, References), so mail
clients show them as one thread.
"""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from webui.alerts import messages
from webui.alerts.channels import DeliveryError, mask, secret_values

KIND = "email"
SECRETS = ("password",)
SECURITY_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
DEFAULT_TIMEOUT = 20.0


def validate(config: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if not isinstance(config.get("host"), str) or not config["host"]:
        problems.append("host is required")
    port = config.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        problems.append("port must be a number from 1 to 65535")
    security = config.get("security", "starttls")
    if security not in SECURITY_PORTS:
        problems.append(f"security must be one of {', '.join(SECURITY_PORTS)}")
    if not _is_address(config.get("from")):
        problems.append("from must be an email address")
    recipients = _recipients(config.get("to"))
    if not recipients or not all(_is_address(a) for a in recipients):
        problems.append("to must be one or more email addresses")
    if bool(config.get("username")) != bool(config.get("password")):
        problems.append("username and password go together")
    elif config.get("username") and security == "none":
        problems.append("a password would be sent unencrypted: use security starttls or ssl")
    timeout = config.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        problems.append("timeout must be a positive number of seconds")
    if "ca_file" in config and not isinstance(config["ca_file"], str):
        problems.append("ca_file must be a path")
    return problems


def send(config: dict[str, Any], message: dict[str, Any]) -> None:
    security = config.get("security", "starttls")
    host, port = config["host"], int(config.get("port") or SECURITY_PORTS[security])
    timeout = float(config.get("timeout", DEFAULT_TIMEOUT))
    try:
        context = ssl.create_default_context(cafile=config.get("ca_file"))
        if security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if security == "starttls":
                client.starttls(context=context)
            if config.get("username"):
                client.login(config["username"], config["password"])
            client.send_message(compose(config, message))
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        refused = ", ".join(f"{a} ({code})" for a, (code, _) in exc.recipients.items())
        raise DeliveryError(f"SMTP {host}:{port} refused {refused}", permanent=all(c >= 500 for c in codes)) \
            from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        reason = mask(f"SMTP {host}:{port}: {exc.smtp_code} {text}", secret_values(config, SECRETS))
        raise DeliveryError(reason, permanent=500 <= exc.smtp_code < 600) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"SMTP {host}:{port}: {exc}", permanent=True) from None
    except (OSError, smtplib.SMTPException) as exc:
        reason = mask(f"SMTP {host}:{port}: {type(exc).__name__}: {exc}", secret_values(config, SECRETS))
        raise DeliveryError(reason) from None


def compose(config: dict[str, Any], message: dict[str, Any]) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = " ".join(str(message["title"]).split())  # a line break in a header would be refused
    mail["From"] = config["from"]
    mail["To"] = ", ".join(_recipients(config["to"]))
    mail["Date"] = formatdate(message["at"], usegmt=True)
    domain = str(config["from"]).rpartition("@")[2].strip("> ") or "celery-webui"
    if message.get("incident_id") is not None:
        thread = f"<webui-incident-{message['incident_id']}@{domain}>"
        if message["kind"] == "opened":
            mail["Message-ID"] = thread
        else:
            mail["Message-ID"] = make_msgid("webui", domain=domain)
            mail["In-Reply-To"] = thread
            mail["References"] = thread
    else:
        mail["Message-ID"] = make_msgid("webui", domain=domain)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    mail["X-WebUI-Event"] = str(message["kind"])
    mail.set_content(messages.render_text(message))
    return mail


def _recipients(value: Any) -> list[str]:
    if isinstance(value, str):
        return [a.strip() for a in value.split(",") if a.strip()]
    if isinstance(value, list | tuple):
        return [str(a).strip() for a in value if str(a).strip()]
    return []


def _is_address(value: Any) -> bool:
    return isinstance(value, str) and "@" in value and not any(c in value for c in "\r\n")
