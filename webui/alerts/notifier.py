"""The outbox: notifications are rows, written with the incident change that caused them, sent by a loop.

`enqueue` adds one AlertNotification per channel of the rule, carrying the message as it was at that moment.
`deliver_due` claims each due row with a conditional UPDATE before sending it, so any number of collectors
(or a collector and a page's "send test") can run it at once and each message goes out once. A failure is
retried with growing delays; after MAX_ATTEMPTS (or at once, when trying again cannot help) the row is given
up and the incident's timeline says so.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from webui import fastjson
from webui.alerts.channels import CHANNELS, DeliveryError, mask, secret_values
from webui.alerts.messages import build_message, build_test_message
from webui.store.database import database_proxy, discard_connection
from webui.store.models import AlertChannel, AlertIncident, AlertIncidentEvent, AlertNotification, AlertRule

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# Seconds before the 2nd, 3rd, … attempt: the 8th comes about 1 h 50 min after the first.
BACKOFF = (30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
JITTER = 0.25  # up to 25 % later, never earlier, so many failed rows do not retry in lockstep
# How long a claim holds a row: longer than any one send can take (SMTP steps time out after 20 s each).
CLAIM_SECONDS = 300.0
BATCH = 50


def enqueue(incident: AlertIncident, rule: AlertRule, kind: str, now: float, external_url: str | None) -> int:
    """Queue `kind` of `incident` to every enabled channel the rule names; return how many were queued.

    A name with no channel behind it is recorded on the incident's timeline ("delivery_failed"), so a typo in
    a rule shows where someone looks. Disabled channels are skipped quietly: that is what disabling is for.
    """
    names = list(dict.fromkeys(str(n) for n in fastjson.loads_as(rule.channels, list)))
    if not names:
        return 0
    channels = {c.name: c for c in AlertChannel.select().where(AlertChannel.name.in_(names))}
    payload = fastjson.dumps(build_message(incident, rule, kind, external_url, now))
    queued = 0
    with database_proxy.atomic():
        for name in names:
            channel = channels.get(name)
            if channel is None or channel.kind not in CHANNELS:
                why = f"no channel named {name!r}" if channel is None else f"unknown channel kind {channel.kind!r}"
                _event(incident.id, now, "delivery_failed", f"{kind} message not sent to {name}: {why} "
                       f"(rule {rule.name!r})")
                continue
            if not channel.enabled:
                continue
            AlertNotification.create(incident_id=incident.id, channel_id=channel.id, kind=kind, payload=payload,
                                     created_at=now, next_attempt_at=now)
            queued += 1
    return queued


def send_test(channel_id: int, actor: str | None, *, external_url: str | None = None,
              now: float | None = None) -> AlertNotification:
    """Queue a test message to the channel (enabled or not), due at once; tried once, its row shows how it went.

    Raises AlertChannel.DoesNotExist for an unknown id.
    """
    channel = AlertChannel.get_by_id(channel_id)
    now = time.time() if now is None else now
    payload = build_test_message(channel.name, external_url, now, actor)
    return AlertNotification.create(incident_id=None, channel_id=channel.id, kind="test",
                                    payload=fastjson.dumps(payload), created_at=now, next_attempt_at=now)


def deliver_due(now: float, *, clock: Callable[[], float] = time.time, limit: int = BATCH) -> int:
    """Send up to `limit` messages due at `now`; return how many were delivered.

    Times recorded (sent, next attempt, claims) are `now` plus the time spent so far, as measured by `clock`.
    """
    return _deliver(now, clock, limit)[0]


def delivery_loop(stop: threading.Event, interval: float = 2.0) -> None:
    """Deliver due messages every `interval` seconds until `stop` is set (the leading collector runs it)."""
    while not stop.is_set():
        attempted = 0
        try:
            with database_proxy.connection_context():
                attempted = _deliver(time.time(), time.time, BATCH)[1]
        except Exception as exc:  # noqa: BLE001 - a database hiccup: the rows wait, the next round tries again
            log.warning("alerts: delivering notifications failed: %s", exc, exc_info=True)
            discard_connection(database_proxy)
        if attempted < BATCH:  # a full batch: more may be due already
            stop.wait(interval)


def backoff(attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after `attempts` failed attempts (1 → 30 s, 2 → 1 min, … 7 and more → 1 h), plus jitter."""
    base = BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]
    return base * (1.0 + JITTER * rand())


def status(row: AlertNotification) -> str:
    """sent, failed (given up), retrying (failed at least once, will try again), or queued."""
    if row.sent_at is not None:
        return "sent"
    if row.failed_at is not None:
        return "failed"
    return "retrying" if row.attempts else "queued"


# -- delivering ------------------------------------------------------------------------------------------


def _deliver(now: float, clock: Callable[[], float], limit: int) -> tuple[int, int]:
    started = clock()

    def at() -> float:
        return now + max(0.0, clock() - started)

    sent = attempted = 0
    for row in _due(now, limit):
        if _waits_for_earlier(row):
            continue
        if not _claim(row, at()):
            continue  # another process got there first
        attempted += 1
        reason, permanent = _send(row)
        if reason is None:
            _record_sent(row, at())
            sent += 1
        else:
            _record_failure(row, at(), reason, permanent)
    return sent, attempted


def _due(now: float, limit: int) -> list[AlertNotification]:
    n = AlertNotification
    return list(n.select().where(n.sent_at.is_null(), n.failed_at.is_null(), n.next_attempt_at <= now,
                                 n.claimed_until.is_null() | (n.claimed_until < now))
                .order_by(n.id).limit(limit))  # oldest first


def _waits_for_earlier(row: AlertNotification) -> bool:
    # An incident's messages reach each channel in order: a "resolved" overtaking a retried "opened" would
    # leave PagerDuty with an alert that never resolves.
    if row.incident_id is None:
        return False
    n = AlertNotification
    return n.select().where(n.incident_id == row.incident_id, n.channel_id == row.channel_id, n.id < row.id,
                            n.sent_at.is_null(), n.failed_at.is_null()).exists()


def _claim(row: AlertNotification, at: float) -> bool:
    n = AlertNotification
    claimed = n.update(claimed_until=at + CLAIM_SECONDS).where(
        n.id == row.id, n.sent_at.is_null(), n.failed_at.is_null(), n.next_attempt_at <= row.next_attempt_at,
        n.claimed_until.is_null() | (n.claimed_until < at)).execute()
    return claimed == 1


def _send(row: AlertNotification) -> tuple[str | None, bool]:
    """Send one claimed row: (None, _) when delivered, else (reason, whether trying again is pointless)."""
    channel = AlertChannel.get_or_none(AlertChannel.id == row.channel_id)
    if channel is None:
        return "the channel was deleted", True
    if not channel.enabled and row.kind != "test":
        return f"the channel {channel.name} is disabled", True
    module = CHANNELS.get(channel.kind)
    if module is None:
        return f"unknown channel kind {channel.kind!r}", True
    config = fastjson.loads_as(channel.config, dict)
    problems = module.validate(config)
    if problems:
        return "the channel's configuration is invalid: " + "; ".join(problems), True
    message: dict[str, Any] = {**fastjson.loads_as(row.payload, dict), "notification_id": row.id}
    try:
        module.send(config, message)
    except DeliveryError as exc:
        return mask(exc.reason, secret_values(config, module.SECRETS)), exc.permanent
    except Exception as exc:  # noqa: BLE001 - a bug in one channel must not stop the others
        reason = mask(f"{type(exc).__name__}: {exc}", secret_values(config, module.SECRETS))
        log.error("alerts: channel %s (%s) failed unexpectedly: %s", channel.name, channel.kind, reason)
        return reason, False
    return None, False


def _record_sent(row: AlertNotification, at: float) -> None:
    attempts = row.attempts + 1
    AlertNotification.update(sent_at=at, attempts=attempts, claimed_until=None, last_error=None).where(
        AlertNotification.id == row.id).execute()
    name = _channel_label(row.channel_id)
    log.info("alerts: %s message %d sent to %s (attempt %d)", row.kind, row.id, name, attempts)
    if row.incident_id is not None:
        _event(row.incident_id, at, "notified", f"{row.kind} message sent to {name}"
               + (f" (attempt {attempts})" if attempts > 1 else ""))


def _record_failure(row: AlertNotification, at: float, reason: str, permanent: bool) -> None:
    attempts = row.attempts + 1
    name = _channel_label(row.channel_id)
    # A test is tried once: someone is waiting on the page for the answer, not for the next hour's retries.
    if permanent or attempts >= (1 if row.kind == "test" else MAX_ATTEMPTS):
        AlertNotification.update(failed_at=at, attempts=attempts, claimed_until=None, last_error=reason).where(
            AlertNotification.id == row.id).execute()
        log.warning("alerts: %s message %d to %s given up after %d attempt(s): %s", row.kind, row.id, name,
                    attempts, reason)
        if row.incident_id is not None:
            _event(row.incident_id, at, "delivery_failed", f"{row.kind} message to {name} not delivered after "
                   f"{attempts} attempt{'s' if attempts > 1 else ''}: {reason}")
        return
    delay = backoff(attempts)
    AlertNotification.update(attempts=attempts, next_attempt_at=at + delay, claimed_until=None,
                             last_error=reason).where(AlertNotification.id == row.id).execute()
    log.warning("alerts: %s message %d to %s failed (attempt %d, next in %.0f s): %s", row.kind, row.id, name,
                attempts, delay, reason)


def _channel_label(channel_id: int) -> str:
    channel = AlertChannel.get_or_none(AlertChannel.id == channel_id)
    return f"{channel.name} ({channel.kind})" if channel is not None else f"channel #{channel_id} (deleted)"


def _event(incident_id: int, at: float, kind: str, detail: str) -> None:
    AlertIncidentEvent.create(incident_id=incident_id, at=at, kind=kind, actor=None, detail=detail)
