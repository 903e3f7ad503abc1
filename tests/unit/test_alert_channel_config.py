"""Each channel kind checks its configuration for the editor, and renders the shared message its own way."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from webui.alerts.channels import CHANNELS, DeliveryError, email, masked_config, pagerduty, slack, webhook
from webui.alerts.channels.http import post
from webui.alerts.messages import build_test_message

GOOD = {
    "email": {"host": "smtp.example.com", "from": "webui@example.com", "to": ["ops@example.com"],
              "username": "webui", "password": "pw"},
    "slack": {"url": "https://hooks.slack.com/services/T0/B0/token"},
    "discord": {"url": "https://discord.com/api/webhooks/1/token"},
    "webhook": {"url": "https://example.com/hook", "secret": "s3cret", "headers": {"Authorization": "Bearer x"}},
    "pagerduty": {"routing_key": "R0123456789abcdef0123456789abcd"},
}


def test_every_kind_is_registered_under_its_name():
    assert sorted(CHANNELS) == ["discord", "email", "pagerduty", "slack", "webhook"]
    assert all(module.KIND == kind for kind, module in CHANNELS.items())


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_a_good_configuration_has_no_problems(kind):
    assert CHANNELS[kind].validate(GOOD[kind]) == []


@pytest.mark.parametrize(("kind", "config", "problem"), [
    ("email", {"from": "a@b", "to": ["c@d"]}, "host is required"),
    ("email", {**GOOD["email"], "to": []}, "to must be one or more email addresses"),
    ("email", {**GOOD["email"], "security": "tls"}, "security must be one of starttls, ssl, none"),
    ("email", {**GOOD["email"], "security": "none"}, "a password would be sent unencrypted"),
    ("email", {**GOOD["email"], "password": ""}, "username and password go together"),
    ("email", {**GOOD["email"], "port": 70000}, "port must be a number from 1 to 65535"),
    ("slack", {}, "url is required"),
    ("discord", {"url": "file:///etc/passwd"}, "url must be an http:// or https:// address"),
    ("webhook", {**GOOD["webhook"], "headers": {"X-WebUI-Signature": "forged"}}, "headers cannot set"),
    ("pagerduty", {}, "routing_key is required"),
])
def test_a_bad_configuration_says_what_is_wrong(kind, config, problem):
    assert any(problem in p for p in CHANNELS[kind].validate(config))


def test_an_email_address_list_may_be_one_string():
    assert email.validate({**GOOD["email"], "to": "a@example.com, b@example.com"}) == []
    mail = email.compose({**GOOD["email"], "to": "a@example.com, b@example.com"}, build_test_message("m", None, 0))
    assert mail["To"] == "a@example.com, b@example.com"


def test_secrets_are_masked_for_display():
    shown = masked_config("webhook", GOOD["webhook"])
    assert shown == {"url": "***", "secret": "***", "headers": "***"}
    assert masked_config("email", GOOD["email"])["password"] == "***"
    assert masked_config("email", GOOD["email"])["host"] == "smtp.example.com"


def test_slack_escapes_its_markup_characters():
    message = {**build_test_message("ops", None, 0), "summary": "a < b & c > d"}
    section = slack.payload(message)["blocks"][1]
    assert section["text"]["text"] == "a &lt; b &amp; c &gt; d"


def test_a_webhook_signature_covers_the_timestamp_and_the_body():
    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert webhook.signature("k", "1700000000", b"{}") == expected
    assert webhook.signature("k", "1700000001", b"{}") != expected


def test_pagerduty_resolves_by_dedup_key_alone():
    message = {**build_test_message("pd", None, 0), "kind": "resolved", "incident_id": 7}
    assert pagerduty.event("key", message) == {"routing_key": "key", "event_action": "resolve",
                                               "dedup_key": "webui-incident-7"}


def test_only_http_addresses_are_posted_to():
    with pytest.raises(DeliveryError) as caught:
        post("file:///etc/passwd", b"{}")
    assert caught.value.permanent and "passwd" not in caught.value.reason
