"""Turn what arrives on the event channel into clean event dicts, or say why it is garbage.

Two steps with different homes:
- `decode_envelope` / `decode_body` run in the subscriber thread: only json → base64 → json, so the loop that
  Redis watches stays cheap (celery-facts §1.6, §2.4). A message body may hold one event or a list of them
  (`task.multi`, the batches prefork workers send).
- `normalise` runs in the writer thread: it checks types and sizes of every field, because anyone who can
  publish to the broker can put anything on the channel. Garbage raises `MalformedEvent`; it is counted and
  logged by the caller, never fatal.

Timestamps are kept exactly as sent: the event's `timestamp` is the sender's `time.time()` (absolute), so the
Receiver's timezone "localisation" (celery issue #2482) is not applied. `local_received` is our clock.
"""
from __future__ import annotations

import binascii
import math
import re
from typing import Any

from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.serialization import loads as kombu_loads

from webui import fastjson

MAX_EVENT_TYPE = 64
MAX_IDENT = 255  # task ids, hostnames, names, queues
MAX_EXTRA_TEXT = 16_384  # any other string field, e.g. of a custom event
# Never pickle or yaml: a hostile message on the event channel must not become code execution.
SAFE_CONTENT_TYPES = frozenset({"application/json", "application/x-msgpack"})

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.-]*$")
_TEXT_FIELDS = ("args", "kwargs", "result", "exception", "traceback")
_IDENT_FIELDS = ("name", "hostname", "parent_id", "root_id", "queue", "exchange", "routing_key",
                 "sw_ident", "sw_ver", "sw_sys")
_INT_FIELDS = ("pid", "clock", "retries", "active", "processed", "signum")
_FLOAT_FIELDS = ("utcoffset", "runtime", "freq")
# Seconds since 1970 up to the end of year 9999: what a date can show. A timestamp beyond is noise, and would
# break every page that shows it as a date.
_LAST_EPOCH = 253_402_300_799.0
_BOOL_FIELDS = ("terminated", "expired", "requeue")


class MalformedEvent(ValueError):
    """A message or event that cannot be used; the text says why."""


def decode_envelope(payload: bytes | str) -> list[Any]:
    """Decode a kombu message envelope as published on Redis PUB/SUB."""
    try:
        envelope = fastjson.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"envelope is not JSON: {exc}") from None
    if not isinstance(envelope, dict) or "body" not in envelope:
        raise MalformedEvent("envelope is not a kombu message (no body)")
    properties = envelope.get("properties")
    body_encoding = properties.get("body_encoding") if isinstance(properties, dict) else None
    return decode_body(envelope["body"], envelope.get("content-type"), envelope.get("content-encoding"),
                       body_encoding)


def decode_body(body: Any, content_type: Any, content_encoding: Any, body_encoding: Any = None) -> list[Any]:
    """Decode a message body into a list of raw events (one, or a `task.multi` batch)."""
    if body_encoding == "base64":
        try:
            body = binascii.a2b_base64(body)  # what base64.b64decode calls, without its wrapper's cost
        except (binascii.Error, TypeError, ValueError) as exc:
            raise MalformedEvent(f"body is not base64: {exc}") from None
    if content_type in (None, "application/json") and isinstance(body, bytes | str):
        try:
            decoded = fastjson.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedEvent(f"body is not JSON: {exc}") from None
    elif content_type in SAFE_CONTENT_TYPES and isinstance(body, bytes | str):
        try:
            decoded = kombu_loads(body, content_type, content_encoding or "utf-8", accept=SAFE_CONTENT_TYPES)
        except (ContentDisallowed, DecodeError, ValueError, TypeError) as exc:
            raise MalformedEvent(f"body cannot be decoded as {content_type}: {exc}") from None
    elif isinstance(body, dict | list) and content_type in (None, "application/json"):
        decoded = body  # transports that hand over decoded bodies
    else:
        raise MalformedEvent(f"refused content type {content_type!r}")
    return decoded if isinstance(decoded, list) else [decoded]


def normalise(raw: Any, local_received: float) -> dict[str, Any]:
    """Validate one raw event in place and return it, with known types and bounded sizes.

    In place because every event dict here was just made by the JSON decoder and belongs to nobody else:
    copying ten fields per event is a measurable share of ingest.
    """
    if not isinstance(raw, dict):
        raise MalformedEvent(f"event is a {type(raw).__name__}, not an object")
    etype = raw.get("type")
    if not isinstance(etype, str) or len(etype) > MAX_EVENT_TYPE or not _EVENT_TYPE.match(etype):
        raise MalformedEvent(f"bad event type {_preview(etype)}")
    if etype.startswith("task-"):
        uuid = raw.get("uuid")
        if not isinstance(uuid, str) or not uuid or len(uuid) > MAX_IDENT:
            raise MalformedEvent(f"{etype} without a usable uuid: {_preview(uuid)}")
    rejected = None
    for key, value in raw.items():
        if type(value) is str and ("\x00" in value or not value.isascii()):
            value = raw[key] = _storable_text(value)
        cleaner = _CLEANERS.get(key)
        if cleaner is _as_is or value is None:
            continue
        clean = _clean_field(key, value) if cleaner is None else cleaner(value)
        if clean is not value:
            if rejected is None:
                rejected = {}
            rejected[key] = clean
    if rejected:
        for key, clean in rejected.items():
            if clean is None:
                del raw[key]
            else:
                raw[key] = clean
    raw["local_received"] = local_received
    if etype.startswith("worker-") and not raw.get("hostname"):
        raise MalformedEvent(f"{etype} without a hostname")
    return raw


def _storable_text(value: str) -> str:
    """Text either database takes: PostgreSQL refuses NUL and neither encodes a lone surrogate, and the event
    would be refused whole. U+FFFD (or "?" for a surrogate) shows where the character was."""
    value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _clean_field(key: str, value: Any) -> Any:
    if value is None:
        return None
    cleaner = _CLEANERS.get(key)
    if cleaner is not None:
        return cleaner(value)
    if not isinstance(key, str) or len(key) > MAX_EVENT_TYPE:
        return None
    return _bounded_json(value)


def _ident(value: Any) -> str | None:
    if type(value) is str:
        return value if len(value) <= MAX_IDENT else value[:MAX_IDENT]
    return None


_INT64 = 2**63  # what a database integer column holds; a bigger number in an event is noise, not a count


def _integer(value: Any) -> int | None:
    return value if type(value) is int and -_INT64 <= value < _INT64 else None  # bool is not an int here


def _boolean(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _short_text(value: Any) -> str | None:
    if type(value) is str:
        return value if len(value) <= 64 else value[:64]
    return None


def _loadavg(value: Any) -> list[float] | None:
    if isinstance(value, list | tuple) and len(value) <= 3:
        numbers = [_finite(v) for v in value]
        return numbers if all(n is not None for n in numbers) else None  # type: ignore[return-value]
    return None


def _as_is(value: Any) -> Any:
    return value  # the privacy filter masks, converts and caps these


def _dropped(value: Any) -> None:
    return None


def _finite(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    return float(value) if kind is int and -_INT64 <= value < _INT64 else None


def _epoch(value: Any) -> float | None:
    number = _finite(value)
    return number if number is not None and 0.0 <= number <= _LAST_EPOCH else None


def _bounded_json(value: Any) -> Any:
    """Keep custom fields, but never let one of them grow a row without bound."""
    if isinstance(value, str):
        return value if len(value) <= MAX_EXTRA_TEXT else value[:MAX_EXTRA_TEXT]
    if isinstance(value, bool | int | float):
        return value if not isinstance(value, float) or math.isfinite(value) else None
    text = fastjson.dumps(value)
    if len(text) <= MAX_EXTRA_TEXT:
        return value
    return text[:MAX_EXTRA_TEXT]


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# One cleaner per known field: a dict lookup per field is cheaper than a chain of tests on the hot path.
_CLEANERS: dict[str, Any] = {
    **{key: _as_is for key in _TEXT_FIELDS},
    **{key: _ident for key in _IDENT_FIELDS},
    **{key: _integer for key in _INT_FIELDS},
    **{key: _finite for key in _FLOAT_FIELDS},
    **{key: _boolean for key in _BOOL_FIELDS},
    "timestamp": _epoch, "eta": _short_text, "expires": _short_text, "loadavg": _loadavg,
    "local_received": _dropped,
    "type": _as_is, "uuid": _as_is,  # checked above
}
