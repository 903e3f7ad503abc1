"""Notifications reach real receivers: an SMTP server (aiosmtpd, over STARTTLS and implicit TLS with a
certificate made here) and local HTTP servers standing in for Slack, Discord, PagerDuty and a webhook.

Only the far end is a stand-in: messages go through the outbox (enqueue, deliver_due) on a real database, over
real sockets. Retries use a made-up clock: deliver_due is called with `now` moved forward by hand.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from webui.alerts import notifier
from webui.alerts.notifier import MAX_ATTEMPTS, deliver_due, enqueue, send_test
from webui.store.models import AlertChannel, AlertIncident, AlertIncidentEvent, AlertNotification, AlertRule

NOW = 1_800_000_000.0
EXTERNAL_URL = "https://celery.example.com/webui"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# -- the store -----------------------------------------------------------------------------------------------


@pytest.fixture
def store(db: Any) -> Any:
    """The migrated, connected database (conftest's `db`), under the name these tests read it by."""
    return db


def add_channel(name: str, kind: str, enabled: bool = True, **config: Any) -> AlertChannel:
    return AlertChannel.create(name=name, kind=kind, config=json.dumps(config), enabled=enabled, created_at=NOW,
                               updated_at=NOW)


def add_rule(*channels: str, detector: str = "task_lost", severity: str = "critical") -> AlertRule:
    return AlertRule.create(name="Lost tasks", detector=detector, severity=severity,
                            channels=json.dumps(list(channels)), created_at=NOW, updated_at=NOW)


def open_incident(rule: AlertRule) -> AlertIncident:
    return AlertIncident.create(
        rule_id=rule.id, subject="5f0c-uuid", scope="tests.celeryapp.sleep", state="open", severity=rule.severity,
        summary="Task tests.celeryapp.sleep [5f0c-uuid] was lost when w1@host went offline",
        detail=json.dumps({"worker": "w1@host", "uuid": "5f0c-uuid"}), link="/task/5f0c-uuid",
        opened_at=NOW - 120, last_seen_at=NOW)


def resolve(incident: AlertIncident, at: float) -> AlertIncident:
    incident.state, incident.resolved_at = "resolved", at
    incident.save()
    return incident


def timeline(incident: AlertIncident) -> list[tuple[str, str]]:
    return [(e.kind, e.detail) for e in
            AlertIncidentEvent.select().where(AlertIncidentEvent.incident_id == incident.id)
            .order_by(AlertIncidentEvent.id)]


def outbox() -> list[AlertNotification]:
    return list(AlertNotification.select().order_by(AlertNotification.id))


# -- HTTP receivers ------------------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: Message  # names are case-insensitive, as in HTTP
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 answering POSTs with the scripted statuses, then `status`."""

    statuses: list[int] = field(default_factory=list)
    status: int = 200
    answer: bytes = b"ok"
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/") -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def respond(self, request: Received) -> tuple[int, bytes]:
        self.requests.append(request)
        time.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else self.status
        return status, self.answer if status < 300 else b'{"error": "boom"}'


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(**kwargs: Any) -> Receiver:
        receiver = Receiver(**kwargs)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    status, answer = receiver.respond(Received(self.path, self.headers, body))
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-receiver", daemon=True)
        thread.start()
        servers.append((server, thread))
        receiver.server = server
        return receiver

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- a real SMTP server --------------------------------------------------------------------------------------


@dataclass
class Certificate:
    ca_file: str
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A CA and a server certificate for 127.0.0.1 signed by it; the client trusts the CA through `ca_file`."""
    directory = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webui test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return Certificate(str(ca_file), context)


@dataclass
class Mailbox:
    port: int
    mails: list[tuple[list[str], Message, bool]] = field(default_factory=list)  # recipients, message, over TLS

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        over_tls = server.transport.get_extra_info("ssl_object") is not None
        self.mails.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content), over_tls))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"webui", b"pw")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 235 or 535 itself


@pytest.fixture
def smtp_server(certificate: Certificate) -> Iterator[Callable[[str], Mailbox]]:
    """Start aiosmtpd for a `security`: starttls (TLS required before login), ssl (implicit TLS) or none."""
    controllers: list[Controller] = []

    def start(security: str) -> Mailbox:
        mailbox = Mailbox(free_port())
        tls = {"starttls": {"tls_context": certificate.server_context, "require_starttls": True},
               # aiosmtpd does not count implicit TLS as TLS for AUTH: allow it (the connection is TLS)
               "ssl": {"ssl_context": certificate.server_context, "auth_require_tls": False},
               "none": {}}[security]
        controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port, authenticator=check_login,
                                **tls)
        controller.start()
        controllers.append(controller)
        return mailbox

    yield start
    for controller in controllers:
        controller.stop()


# -- each kind -----------------------------------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_an_email_arrives_over_tls_after_login(store, smtp_server, certificate, security):
    mailbox = smtp_server(security)
    add_channel("ops-mail", "email", host="127.0.0.1", port=mailbox.port, security=security, username="webui",
                password="pw", ca_file=certificate.ca_file, timeout=5, **{"from": "webui@example.com"},
                to=["ops@example.com", "oncall@example.com"])
    incident = open_incident(add_rule("ops-mail"))
    assert enqueue(incident, AlertRule.get(), "opened", NOW, EXTERNAL_URL) == 1
    assert deliver_due(NOW) == 1
    [(recipients, mail, over_tls)] = mailbox.mails
    assert recipients == ["ops@example.com", "oncall@example.com"] and over_tls
    assert mail["Subject"] == "[CRITICAL] Lost task: tests.celeryapp.sleep on w1@host"
    assert mail["From"] == "webui@example.com"
    assert mail["Message-ID"] == f"<webui-incident-{incident.id}@example.com>"
    body = mail.get_payload(decode=True).decode()
    assert "Task tests.celeryapp.sleep [5f0c-uuid] was lost when w1@host went offline" in body
    assert f"Incident: {EXTERNAL_URL}/alerts/incidents/{incident.id}" in body
    assert f"{EXTERNAL_URL}/task/5f0c-uuid" in body
    assert ("notified", "opened message sent to ops-mail (email)") in timeline(incident)


@sqlite_only
def test_a_resolved_email_joins_the_incident_thread(store, smtp_server, certificate):
    mailbox = smtp_server("starttls")
    add_channel("ops-mail", "email", host="127.0.0.1", port=mailbox.port, ca_file=certificate.ca_file,
                **{"from": "WebUI <webui@example.com>"}, to="ops@example.com")
    rule = add_rule("ops-mail")
    incident = open_incident(rule)
    enqueue(incident, rule, "opened", NOW, EXTERNAL_URL)
    enqueue(resolve(incident, NOW + 600), rule, "resolved", NOW + 600, EXTERNAL_URL)
    assert deliver_due(NOW + 600) == 2
    opened, resolved = (mail for _, mail, _ in mailbox.mails)
    assert resolved["Subject"].startswith("[RESOLVED] ")
    assert resolved["In-Reply-To"] == resolved["References"] == opened["Message-ID"]
    assert "Lasted: 12 min" in resolved.get_payload(decode=True).decode()


@sqlite_only
def test_a_refused_login_is_given_up_at_once_without_showing_the_password(store, smtp_server, certificate):
    mailbox = smtp_server("starttls")
    add_channel("ops-mail", "email", host="127.0.0.1", port=mailbox.port, ca_file=certificate.ca_file,
                username="webui", password="wrong-password", **{"from": "webui@example.com"}, to=["o@example.com"])
    incident = open_incident(add_rule("ops-mail"))
    enqueue(incident, AlertRule.get(), "opened", NOW, None)
    assert deliver_due(NOW) == 0
    [row] = outbox()
    assert row.failed_at is not None and row.attempts == 1
    assert row.last_error.startswith(f"SMTP 127.0.0.1:{mailbox.port}: 535 ")
    assert "wrong-password" not in row.last_error and not mailbox.mails


@sqlite_only
def test_slack_gets_the_title_the_facts_and_a_button_to_the_incident(store, receiver):
    slack = receiver()
    add_channel("ops-slack", "slack", url=slack.url("/services/T000/B000/XXXX"))
    incident = open_incident(add_rule("ops-slack"))
    enqueue(incident, AlertRule.get(), "opened", NOW, EXTERNAL_URL)
    assert deliver_due(NOW) == 1
    [request] = slack.requests
    assert request.path == "/services/T000/B000/XXXX"
    assert request.headers["Content-Type"] == "application/json"
    body = request.json()
    assert body["text"] == ("[CRITICAL] Lost task: tests.celeryapp.sleep on w1@host: Task tests.celeryapp.sleep "
                            "[5f0c-uuid] was lost when w1@host went offline")
    header, summary, facts, look_at, actions = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text",
                                                 "text": "[CRITICAL] Lost task: tests.celeryapp.sleep on w1@host"}}
    assert summary["text"]["text"].startswith("Task tests.celeryapp.sleep [5f0c-uuid] was lost")
    assert {"type": "mrkdwn", "text": "*Open for*\n2 min"} in facts["fields"]
    assert f"<{EXTERNAL_URL}/task/5f0c-uuid|open>" in look_at["elements"][0]["text"]
    assert actions["elements"][0]["url"] == f"{EXTERNAL_URL}/alerts/incidents/{incident.id}"


@sqlite_only
def test_discord_gets_an_embed_and_pings_nobody(store, receiver):
    discord = receiver(status=204, answer=b"")
    add_channel("ops-discord", "discord", url=discord.url("/api/webhooks/1/token"))
    incident = open_incident(add_rule("ops-discord"))
    enqueue(incident, AlertRule.get(), "opened", NOW, EXTERNAL_URL)
    assert deliver_due(NOW) == 1
    body = discord.requests[0].json()
    assert body["content"].startswith("[CRITICAL] Lost task: tests.celeryapp.sleep on w1@host: Task ")
    assert body["allowed_mentions"] == {"parse": []}
    [embed] = body["embeds"]
    assert embed["url"] == f"{EXTERNAL_URL}/alerts/incidents/{incident.id}"
    assert embed["color"] == 0xD0312D
    assert {"name": "Rule", "value": "Lost tasks", "inline": True} in embed["fields"]


@sqlite_only
def test_the_webhook_posts_the_message_signed_with_the_secret(store, receiver):
    hook = receiver()
    add_channel("hook", "webhook", url=hook.url("/in?token=abc"), secret="s3cret",
                headers={"Authorization": "Bearer t0ken"})
    incident = open_incident(add_rule("hook"))
    enqueue(incident, AlertRule.get(), "opened", NOW, EXTERNAL_URL)
    before = int(time.time())
    assert deliver_due(NOW) == 1
    [request] = hook.requests
    headers = request.headers
    assert headers["X-WebUI-Event"] == "opened"
    assert headers["Authorization"] == "Bearer t0ken"
    assert headers["X-WebUI-Delivery"] == str(outbox()[0].id)
    timestamp = headers["X-WebUI-Timestamp"]
    assert before <= int(timestamp) <= time.time()
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-WebUI-Signature"], f"sha256={expected}")
    body = request.json()
    assert (body["kind"], body["incident_id"], body["severity"]) == ("opened", incident.id, "critical")
    assert body["title"] == "[CRITICAL] Lost task: tests.celeryapp.sleep on w1@host"
    assert body["link"] == f"{EXTERNAL_URL}/alerts/incidents/{incident.id}"
    assert body["detail"] == {"worker": "w1@host", "uuid": "5f0c-uuid"}


@sqlite_only
def test_a_webhook_without_a_secret_is_not_signed(store, receiver):
    hook = receiver()
    add_channel("hook", "webhook", url=hook.url())
    enqueue(open_incident(add_rule("hook")), AlertRule.get(), "opened", NOW, None)
    deliver_due(NOW)
    assert "X-WebUI-Signature" not in hook.requests[0].headers


@sqlite_only
def test_pagerduty_triggers_then_resolves_the_same_alert(store, receiver):
    pagerduty = receiver(status=202, answer=b'{"status": "success"}')
    key = "R0123456789abcdef0123456789abcd"
    add_channel("pd", "pagerduty", routing_key=key, url=pagerduty.url("/v2/enqueue"))
    rule = add_rule("pd")
    incident = open_incident(rule)
    enqueue(incident, rule, "opened", NOW, EXTERNAL_URL)
    enqueue(resolve(incident, NOW + 300), rule, "resolved", NOW + 300, EXTERNAL_URL)
    assert deliver_due(NOW + 300) == 2
    trigger, resolved = (r.json() for r in pagerduty.requests)
    assert trigger["routing_key"] == key and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == resolved["dedup_key"] == f"webui-incident-{incident.id}"
    payload = trigger["payload"]
    assert payload["severity"] == "critical" and payload["source"] == "tests.celeryapp.sleep on w1@host"
    assert payload["summary"] == "Lost task: Task tests.celeryapp.sleep [5f0c-uuid] was lost when w1@host went " \
                                 "offline"
    assert payload["custom_details"]["worker"] == "w1@host" and payload["custom_details"]["rule"] == "Lost tasks"
    assert trigger["links"][0] == {"href": f"{EXTERNAL_URL}/alerts/incidents/{incident.id}",
                                   "text": "Incident in Celery WebUI"}
    assert resolved == {"routing_key": key, "event_action": "resolve", "dedup_key": f"webui-incident-{incident.id}"}


# -- the outbox ----------------------------------------------------------------------------------------------


@sqlite_only
def test_a_failing_receiver_is_retried_with_backoff_and_gets_the_message_once(store, receiver):
    hook = receiver(statuses=[500, 500])
    add_channel("hook", "webhook", url=hook.url())
    incident = open_incident(add_rule("hook"))
    enqueue(incident, AlertRule.get(), "opened", NOW, None)
    assert deliver_due(NOW, clock=lambda: 0.0) == 0
    [row] = outbox()
    assert row.attempts == 1 and row.last_error == f"HTTP 500 from 127.0.0.1:{hook.server.server_address[1]}: " \
                                                   '{"error": "boom"}'
    assert 30 <= row.next_attempt_at - NOW <= 37.5
    assert deliver_due(NOW + 29, clock=lambda: 0.0) == 0 and len(hook.requests) == 1  # not due yet
    assert deliver_due(NOW + 40, clock=lambda: 0.0) == 0
    [row] = outbox()
    assert row.attempts == 2 and 60 <= row.next_attempt_at - (NOW + 40) <= 75
    assert deliver_due(NOW + 120, clock=lambda: 0.0) == 1
    assert deliver_due(NOW + 10_000, clock=lambda: 0.0) == 0
    [row] = outbox()
    assert (row.attempts, row.sent_at, row.last_error) == (3, NOW + 120, None)
    assert len(hook.requests) == 3 and len({r.headers["X-WebUI-Delivery"] for r in hook.requests}) == 1
    assert timeline(incident) == [("notified", "opened message sent to hook (webhook) (attempt 3)")]


@sqlite_only
def test_a_receiver_that_always_fails_is_given_up_with_the_reason_and_no_secret(store, receiver, caplog):
    caplog.set_level(logging.INFO, logger="webui.alerts")
    hook = receiver(status=503)
    add_channel("hook", "slack", url=hook.url("/services/T000/B000/SECRETTOKEN"))
    incident = open_incident(add_rule("hook"))
    enqueue(incident, AlertRule.get(), "opened", NOW, None)
    now = NOW
    for _ in range(MAX_ATTEMPTS + 2):
        deliver_due(now)
        now += 4 * 3600
    [row] = outbox()
    assert len(hook.requests) == MAX_ATTEMPTS == row.attempts
    assert row.failed_at is not None and row.sent_at is None
    assert row.last_error.startswith("HTTP 503 from 127.0.0.1:")
    [(kind, detail)] = timeline(incident)
    assert kind == "delivery_failed"
    assert detail.startswith(f"opened message to hook (slack) not delivered after {MAX_ATTEMPTS} attempts: HTTP 503")
    assert "SECRETTOKEN" not in row.last_error + detail + caplog.text


@sqlite_only
def test_a_webhook_that_is_gone_is_given_up_at_once(store, receiver):
    hook = receiver(status=404)
    add_channel("hook", "discord", url=hook.url("/api/webhooks/1/SECRETTOKEN"))
    enqueue(open_incident(add_rule("hook")), AlertRule.get(), "opened", NOW, None)
    deliver_due(NOW)
    [row] = outbox()
    assert row.failed_at is not None and row.attempts == 1 and "HTTP 404" in row.last_error


@sqlite_only
def test_a_resolved_message_waits_for_the_opened_one_to_the_same_channel(store, receiver):
    pagerduty = receiver(statuses=[500])
    add_channel("pd", "pagerduty", routing_key="k" * 32, url=pagerduty.url())
    rule = add_rule("pd")
    incident = open_incident(rule)
    enqueue(incident, rule, "opened", NOW, None)
    deliver_due(NOW)  # fails: retried in 30 s or so
    enqueue(resolve(incident, NOW + 5), rule, "resolved", NOW + 5, None)
    assert deliver_due(NOW + 5) == 0  # the resolve would overtake the trigger
    assert deliver_due(NOW + 60) == 2
    assert [r.json()["event_action"] for r in pagerduty.requests] == ["trigger", "trigger", "resolve"]


def test_one_incident_goes_to_each_of_its_channels(store, receiver):
    slack, hook = receiver(), receiver()
    add_channel("ops-slack", "slack", url=slack.url())
    add_channel("hook", "webhook", url=hook.url())
    add_channel("quiet", "webhook", enabled=False, url=hook.url())
    rule = add_rule("ops-slack", "hook", "quiet", "typo-channel")
    incident = open_incident(rule)
    assert enqueue(incident, rule, "opened", NOW, EXTERNAL_URL) == 2
    assert deliver_due(NOW) == 2
    assert len(slack.requests) == len(hook.requests) == 1
    assert sorted(timeline(incident)) == [
        ("delivery_failed", "opened message not sent to typo-channel: no channel named 'typo-channel' "
                            "(rule 'Lost tasks')"),
        ("notified", "opened message sent to hook (webhook)"),
        ("notified", "opened message sent to ops-slack (slack)"),
    ]


def test_two_delivery_loops_send_each_message_once(store, receiver, database_url):
    hook = receiver(delay=0.02)
    add_channel("hook", "webhook", url=hook.url())
    rule = add_rule("hook")
    for _ in range(20):
        enqueue(open_incident(rule), rule, "opened", NOW, None)
    start = threading.Barrier(2)
    sent: list[int] = []

    def deliver() -> None:
        with store.connection_context():
            start.wait()
            sent.append(deliver_due(NOW))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    deliveries = sorted(int(r.headers["X-WebUI-Delivery"]) for r in hook.requests)
    assert deliveries == sorted(row.id for row in outbox())  # each exactly once
    assert sum(sent) == 20 and all(row.sent_at is not None for row in outbox())
    assert min(sent) > 0  # they really ran side by side (20 sends of 20 ms each, started together)


@sqlite_only
def test_send_test_delivers_at_once_even_to_a_disabled_channel(store, receiver):
    hook = receiver()
    channel = add_channel("hook", "webhook", enabled=False, url=hook.url())
    row = send_test(channel.id, "alice", external_url=EXTERNAL_URL, now=NOW)
    assert (row.incident_id, row.kind, row.next_attempt_at) == (None, "test", NOW)
    assert deliver_due(NOW) == 1
    body = hook.requests[0].json()
    assert hook.requests[0].headers["X-WebUI-Event"] == "test"
    assert body["title"] == "[TEST] Celery WebUI: channel hook" and "sent by alice" in body["summary"]
    assert notifier.status(AlertNotification.get_by_id(row.id)) == "sent"


@sqlite_only
def test_a_failed_test_is_tried_once_and_shows_why(store):
    channel = add_channel("mail", "email", host="127.0.0.1", port=free_port(), security="none", timeout=2,
                          **{"from": "webui@example.com"}, to=["ops@example.com"])
    row = send_test(channel.id, "alice", now=NOW)
    assert deliver_due(NOW) == 0
    row = AlertNotification.get_by_id(row.id)
    assert notifier.status(row) == "failed" and row.attempts == 1
    assert row.last_error.startswith(f"SMTP 127.0.0.1:{channel_port(channel)}: ConnectionRefusedError")


def channel_port(channel: AlertChannel) -> int:
    return int(json.loads(channel.config)["port"])


@sqlite_only
def test_the_delivery_loop_runs_until_stopped(store, receiver):
    hook = receiver()
    channel = add_channel("hook", "webhook", url=hook.url())
    send_test(channel.id, None)
    stop = threading.Event()
    loop = threading.Thread(target=notifier.delivery_loop, args=(stop, 0.05))
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not hook.requests and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        loop.join(5)
    assert not loop.is_alive() and len(hook.requests) == 1
