"""`/alerts/channels`: where notifications go. Admins add, change and delete channels; operators send a test;
everyone else sees each channel's name and kind only.

Secrets (webhook URLs, passwords, routing keys: each channel module's SECRETS) are write-only: once saved they
are never put back into a page, not even the admin's edit form. Leaving a secret's input blank keeps the
saved value. A test message goes through the outbox like any other (webui.alerts.notifier), so the channel's
page shows how it went once the collector's delivery loop has tried it, refreshing itself until then.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from webui import audit, fastjson
from webui.alerts import editing, notifier
from webui.alerts.channels import CHANNELS, masked_config
from webui.alerts.rules import RuleError
from webui.auth.access import requires
from webui.store.models import AlertChannel, AlertNotification
from webui.views.alerts import MAX_ID, actor, bp, here, render_block, rules_file

DELIVERIES = 20  # latest notifications on a channel's page
MAX_FIELD = 4000


@dataclass(frozen=True)
class ChannelField:
    """One input of a channel kind's form, for one key of its configuration (see webui/alerts/channels/)."""

    key: str
    label: str
    input: str = "text"  # text, number, select, lines (a list, one a line), headers (Name: value lines)
    help: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    placeholder: str = ""


FIELDS: dict[str, tuple[ChannelField, ...]] = {
    "email": (
        ChannelField("host", "SMTP host", required=True, placeholder="smtp.example.com"),
        ChannelField("port", "Port", "number", "blank: 587 with starttls, 465 with ssl, 25 with none"),
        ChannelField("security", "Security", "select", choices=("starttls", "ssl", "none")),
        ChannelField("username", "User name", help="blank: no login"),
        ChannelField("password", "Password", help="with a user name only"),
        ChannelField("from", "From", required=True, placeholder="celery-alerts@example.com"),
        ChannelField("to", "To", "lines", "one address a line", required=True, placeholder="oncall@example.com"),
        ChannelField("timeout", "Timeout (s)", "number", "seconds for each SMTP step; blank: 20"),
        ChannelField("ca_file", "CA file", help="a CA bundle to trust instead of the system's, for a relay with a "
                     "private certificate; blank: the system's"),
    ),
    "slack": (ChannelField("url", "Webhook URL", required=True, placeholder="https://hooks.slack.com/services/…",
                           help="an incoming webhook; Mattermost's and Rocket.Chat's work too"),),
    "discord": (ChannelField("url", "Webhook URL", required=True,
                             placeholder="https://discord.com/api/webhooks/…"),),
    "webhook": (
        ChannelField("url", "URL", required=True, placeholder="https://example.com/hooks/celery",
                     help="the message itself is POSTed as JSON"),
        ChannelField("secret", "Signing secret", help="signs each request (X-WebUI-Signature, HMAC-SHA256); "
                     "blank: unsigned"),
        ChannelField("headers", "Extra headers", "headers", "one “Name: value” a line, such as Authorization"),
    ),
    "pagerduty": (
        ChannelField("routing_key", "Routing key", required=True,
                     help="the integration key of an Events API v2 integration"),
        ChannelField("url", "Events URL", placeholder="https://events.pagerduty.com/v2/enqueue",
                     help="blank: PagerDuty's; EU accounts: https://events.eu.pagerduty.com/v2/enqueue"),
    ),
}
KIND_LABELS = {"email": "Email (SMTP)", "slack": "Slack", "discord": "Discord", "webhook": "Webhook (JSON)",
               "pagerduty": "PagerDuty"}


def secret_keys(kind: str) -> frozenset[str]:
    return frozenset(getattr(CHANNELS.get(kind), "SECRETS", ()))


def config_from_form(kind: str, form: MultiDict[str, str], saved: dict[str, Any] | None = None) \
        -> tuple[dict[str, Any], list[str]]:
    """The configuration the form describes: blank inputs are left out, except a secret's, which keeps the
    saved value unless its "clear" box is ticked. Returns it with what could not be read."""
    config: dict[str, Any] = {}
    problems: list[str] = []
    secrets = secret_keys(kind)
    for spec in FIELDS.get(kind, ()):
        text = form.get(f"config.{spec.key}", "")[:MAX_FIELD].strip()
        if not text:
            if spec.key in secrets and saved and spec.key in saved and form.get(f"clear.{spec.key}") != "1":
                config[spec.key] = saved[spec.key]
            continue
        value, problem = _field_value(spec, text)
        if problem:
            problems.append(problem)
        else:
            config[spec.key] = value
    return config, problems


def _field_value(spec: ChannelField, text: str) -> tuple[Any, str | None]:
    if spec.input == "number":
        try:
            number = float(text)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError
        except ValueError:
            return None, f"{spec.key} must be a number, not {text[:40]!r}"
        return (int(number) if number.is_integer() else number), None
    if spec.input == "lines":
        return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()], None
    if spec.input == "headers":
        headers = {}
        for line in text.splitlines():
            name, colon, value = line.partition(":")
            if not line.strip():
                continue
            if not colon or not name.strip():
                return None, "each extra header is a line “Name: value”"
            headers[name.strip()] = value.strip()
        return headers, None
    return text, None


# -- the pages ------------------------------------------------------------------------------------------------

@bp.get("/alerts/channels")
def channels() -> str:
    """Every channel by name and kind; admins also see its (masked) settings; the last delivery of each."""
    rows = list(AlertChannel.select().order_by(AlertChannel.name))
    last = {}
    for row in rows:
        last[row.id] = (AlertNotification.select().where(AlertNotification.channel_id == row.id)
                        .order_by(AlertNotification.id.desc()).first())
    return render_template("alerts/channels.html", page_title="Alert channels", rows=rows, last=last,
                           kinds=KIND_LABELS, masked=_masked, rules_file=rules_file())


@bp.get("/alerts/channels/<int:channel_id>")
def channel(channel_id: int) -> tuple[str, int] | str:
    """One channel: its kind, its masked settings (admins), the rules that use it, its latest deliveries."""
    row = _find(channel_id)
    if row is None:
        return render_template("alerts/channel.html", row=None, channel_id=channel_id,
                               page_title="Unknown channel"), 404
    deliveries = list(AlertNotification.select().where(AlertNotification.channel_id == row.id)
                      .order_by(AlertNotification.id.desc()).limit(DELIVERIES))
    context = {"row": row, "channel_id": channel_id, "deliveries": deliveries, "kinds": KIND_LABELS,
               "waiting": any(notifier.status(d) in ("queued", "retrying") and d.kind == "test" for d in deliveries),
               "rules": editing.rules_naming_channel(row.name), "masked": _masked(row), "rules_file": rules_file()}
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "channel-deliveries":
        return render_block("alerts/channel.html", "deliveries", context)
    return render_template("alerts/channel.html", page_title=row.name, **context), 200


@bp.route("/alerts/channels/new", methods=["GET", "POST"])
@requires("admin")
def new_channel() -> Response | tuple[str, int]:
    """Choose a kind, then fill in its form; POST saves it."""
    kind = request.values.get("kind", "")
    if kind not in FIELDS:
        status = 400 if kind else 200
        return render_template("alerts/channel_form.html", page_title="New channel", row=None, kind=None,
                               kinds=KIND_LABELS, problems=[f"Unknown kind {kind[:40]!r}."] if kind else []), status
    if request.method == "GET":
        return _form(kind, None, {}, []), 200
    return _save(kind, None)


@bp.route("/alerts/channels/<int:channel_id>/edit", methods=["GET", "POST"])
@requires("admin")
def edit_channel(channel_id: int) -> Response | tuple[str, int]:
    """Change a channel's name, settings or enabled flag; its kind stays (make a new channel for another)."""
    row, refusal = _editable(channel_id)
    if row is None:
        assert refusal is not None
        return refusal
    if request.method == "GET":
        return _form(row.kind, row, _shown_values(row), []), 200
    return _save(row.kind, row)


@bp.post("/alerts/channels/<int:channel_id>/delete")
@requires("admin")
def delete_channel(channel_id: int) -> Response | tuple[str, int]:
    """Ask, then delete; rules that name it keep the name, and their incidents' timelines say it is gone."""
    row, refusal = _editable(channel_id)
    if row is None:
        assert refusal is not None
        return refusal
    if request.form.get("confirm") != "1":
        users = [r.name for r in editing.rules_naming_channel(row.name)]
        named = (f" {len(users)} rule(s) send to it ({', '.join(users[:5])}{'…' if len(users) > 5 else ''}): their "
                 "messages will not go anywhere until they name another channel.") if users else ""
        return render_template("alerts/confirm.html", page_title="Delete channel",
                               title=f"Delete the channel {row.name!r}?",
                               text=f"Messages queued for it are given up.{named}", action=here(),
                               button="Delete the channel", back=url_for("alerts.channel", channel_id=channel_id)), 200
    editing.delete_channel(row)
    audit.record("alert_channel.delete", row.name, kind=row.kind)
    flash(f"Deleted the channel {row.name!r}.")
    return redirect(url_for("alerts.channels"), 303)


@bp.post("/alerts/channels/<int:channel_id>/test")
@requires("operator")
def test_channel(channel_id: int) -> Response | tuple[str, int]:
    """Queue a test message to this channel (enabled or not); its page shows the delivery when tried."""
    row = _find(channel_id)
    if row is None:
        audit.record("alert_channel.test", f"channel {channel_id}", "refused", reason="unknown channel")
        return render_template("alerts/channel.html", row=None, channel_id=channel_id,
                               page_title="Unknown channel"), 404
    sent = notifier.send_test(row.id, actor(), external_url=current_app.config["WEBUI_SETTINGS"].external_url)
    audit.record("alert_channel.test", row.name, notification=sent.id)
    flash(f"Test message queued for {row.name}: the collector's delivery loop sends it within seconds; its "
          "result shows below.")
    return redirect(url_for("alerts.channel", channel_id=channel_id) + "#deliveries", 303)


# -- helpers ----------------------------------------------------------------------------------------------

def _find(channel_id: int) -> AlertChannel | None:
    return AlertChannel.get_or_none(AlertChannel.id == channel_id) if channel_id <= MAX_ID else None


def _config(row: AlertChannel) -> dict[str, Any]:
    return fastjson.loads_as(row.config, dict)


def _masked(row: AlertChannel) -> dict[str, Any]:
    return masked_config(row.kind, _config(row))


def _shown_values(row: AlertChannel) -> dict[str, str]:
    """The saved settings as the form's inputs show them: never a secret."""
    secrets, shown = secret_keys(row.kind), {}
    for key, value in _config(row).items():
        if key in secrets:
            continue
        if isinstance(value, list):
            shown[key] = "\n".join(str(v) for v in value)
        else:
            shown[key] = str(value)
    return shown


def _editable(channel_id: int) -> tuple[AlertChannel | None, tuple[str, int] | None]:
    row = _find(channel_id)
    if row is None:
        return None, (render_template("alerts/channel.html", row=None, channel_id=channel_id,
                                      page_title="Unknown channel"), 404)
    if row.managed_by == "file":
        audit.record(request.endpoint or "alert_channel", row.name, "refused", reason="managed in the rules file")
        flash(f"The channel {row.name!r} is managed in {rules_file() or 'the alert rules file'}: change it there.")
        return None, (render_template("alerts/channel.html", page_title=row.name, row=row, channel_id=channel_id,
                                      deliveries=[], kinds=KIND_LABELS, waiting=False, masked=_masked(row),
                                      rules=editing.rules_naming_channel(row.name), rules_file=rules_file()), 409)
    return row, None


def _form(kind: str, row: AlertChannel | None, values: dict[str, str], problems: list[str],
          name: str | None = None, enabled: bool | None = None) -> str:
    saved = set(_config(row)) & secret_keys(kind) if row else set()
    return render_template("alerts/channel_form.html", page_title=f"Edit {row.name}" if row else "New channel",
                           row=row, kind=kind, kinds=KIND_LABELS, fields=FIELDS[kind], secrets=secret_keys(kind),
                           values=values, saved_secrets=saved, problems=problems,
                           name=name if name is not None else (row.name if row else ""),
                           enabled=enabled if enabled is not None else (row is None or bool(row.enabled)))


def _save(kind: str, row: AlertChannel | None) -> Response | tuple[str, int]:
    name = request.form.get("name", "")[:300].strip()
    enabled = request.form.get("enabled") == "1"
    config, problems = config_from_form(kind, request.form, _config(row) if row else None)
    action = "alert_channel.update" if row else "alert_channel.create"
    if not problems:
        try:
            saved = editing.save_channel(name, kind, config, enabled, channel_id=row.id if row else None)
        except RuleError as exc:
            problems = str(exc).split("; ")
        else:
            audit.record(action, name, kind=kind)
            flash(f"Saved the channel {name!r}.")
            return redirect(url_for("alerts.channel", channel_id=saved.id), 303)
    audit.record(action, name or None, "refused", kind=kind, reason="; ".join(problems))
    # The form comes back as typed, except the secrets, which are never sent back to the browser.
    secrets = secret_keys(kind)
    values = {spec.key: request.form.get(f"config.{spec.key}", "")[:MAX_FIELD] for spec in FIELDS[kind]
              if spec.key not in secrets}
    return _form(kind, row, values, [p[:1].upper() + p[1:] for p in problems], name, enabled), 400
