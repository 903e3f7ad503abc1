"""celery-redbeat's schedule, read from its Redis keys (celery-facts §5.4) and decoded here.

RedBeat keeps, under `prefix` (default `redbeat:`):
- HASH `<prefix><name>`: `definition` JSON {name, task, args, kwargs, options, schedule, enabled}, and `meta`
  JSON {last_run_at, total_run_count}, rewritten at every run, so RedBeat's record does not lag;
- ZSET `<prefix>:schedule`: member `<prefix><name>`, score the UNIX time RedBeat next plans to send it.

Its JSON types (`{"__type__": "interval" | "crontab" | "rrule" | "datetime" | "weekday", …}`) are decoded here,
so the monitor needs no celery-redbeat. An entry is one listed in the zset or any `<prefix>*` hash with a
definition. Keys are found with SCAN and ZSCAN, never KEYS, and nothing is written.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import redis

from webui.beat.entries import SOURCE_REDBEAT, ScheduleEntry
from webui.beat.sources import SourceError
from webui.beat.sources.plain_values import entry_args, entry_kwargs, entry_options, unix_time, zone

log = logging.getLogger(__name__)

BATCH = 500  # keys per SCAN step and per pipeline of HMGETs
CRON_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


def read_redbeat(redis_client: redis.Redis, prefix: str = "redbeat:") -> list[ScheduleEntry]:
    """Every RedBeat entry under `prefix`, with RedBeat's own last run and next due time."""
    try:
        scores = _planned_scores(redis_client, prefix)
        keys = sorted(set(scores) | set(_prefixed_keys(redis_client, prefix)))
        records = _definitions_and_meta(redis_client, keys)
    except redis.RedisError as exc:
        raise SourceError(f"cannot read RedBeat's keys {prefix}*: {type(exc).__name__}: {exc}") from exc
    entries = []
    for key, (definition, meta) in records.items():
        try:
            entry = _entry(key, prefix, definition, meta, scores.get(key))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("RedBeat entry %s cannot be decoded: %s: %s", key, type(exc).__name__, exc)
            continue
        if entry is not None:
            entries.append(entry)
    return sorted(entries, key=lambda entry: entry.name)


def _planned_scores(client: redis.Redis, prefix: str) -> dict[str, float]:
    return {_text(member): float(score)
            for member, score in client.zscan_iter(f"{prefix}:schedule", count=BATCH)}


def _prefixed_keys(client: redis.Redis, prefix: str) -> Iterable[str]:
    # No TYPE filter (it needs Redis 6): RedBeat's own `::schedule`, `::statics` and `::lock` keys come back
    # too, and drop out when HMGET answers WRONGTYPE.
    for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=BATCH):
        yield _text(key)


def _definitions_and_meta(client: redis.Redis, keys: list[str]) -> dict[str, tuple[str, str | None]]:
    found: dict[str, tuple[str, str | None]] = {}
    for start in range(0, len(keys), BATCH):
        batch = keys[start:start + BATCH]
        with client.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.hmget(key, ["definition", "meta"])
            replies = pipe.execute(raise_on_error=False)
        for key, reply in zip(batch, replies, strict=True):
            if isinstance(reply, redis.ResponseError):
                continue  # not a hash: one of RedBeat's own keys, or somebody else's
            if isinstance(reply, Exception):
                raise reply
            definition, meta = reply
            if definition:
                found[key] = (_text(definition), _text(meta) if meta else None)
    return found


def _entry(key: str, prefix: str, definition_json: str, meta_json: str | None,
           score: float | None) -> ScheduleEntry | None:
    definition = json.loads(definition_json)
    if not isinstance(definition, dict):
        raise ValueError(f"definition is a JSON {type(definition).__name__}, not an object")
    meta = json.loads(meta_json) if meta_json else {}
    meta = meta if isinstance(meta, dict) else {}
    count = meta.get("total_run_count")
    count = count if isinstance(count, int) else None
    queue, options = entry_options(_decode(definition.get("options") or {}))
    name = definition.get("name")
    return ScheduleEntry(
        source=SOURCE_REDBEAT,
        name=str(name) if name is not None else key[len(prefix):],
        task=str(definition.get("task") or ""),
        schedule=_schedule_spec(definition.get("schedule")),
        args=entry_args(_decode(definition.get("args"))),
        kwargs=entry_kwargs(_decode(definition.get("kwargs"))),
        queue=queue,
        options=options,
        enabled=bool(definition.get("enabled", True)),
        # `save()` stores the entry's creation time as last_run_at; only a run also stores total_run_count.
        last_run_at=_unix(meta.get("last_run_at")) if count else None,
        total_run_count=count,
        # RedBeat scores an entry with no future run -1.
        next_due_at=score if score is not None and score >= 0 else None,
    )


def _schedule_spec(encoded: Any) -> dict[str, Any]:
    kind = encoded.get("__type__") if isinstance(encoded, dict) else None
    if kind == "interval":
        return {"kind": "interval", "seconds": float(encoded["every"]), "relative": bool(encoded.get("relative"))}
    if kind == "crontab":
        # RedBeat stores no zone for a crontab: it runs in the app's timezone.
        fields = {field: _cron_field(encoded.get(field, "*")) for field in CRON_FIELDS}
        return {"kind": "crontab", **fields, "timezone": None}
    if kind == "solar":
        return {"kind": "solar", "event": str(encoded["event"]),
                "latitude": float(encoded.get("latitude", encoded.get("lat"))),
                "longitude": float(encoded.get("longitude", encoded.get("lon")))}
    if kind == "rrule":
        return {"kind": "unknown", "repr": _rrule_repr(encoded)}
    return {"kind": "unknown", "repr": json.dumps(encoded, sort_keys=True)[:500]}


def _cron_field(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


RRULE_FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY")  # dateutil's 0..6
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _rrule_repr(encoded: dict[str, Any]) -> str:
    """`rrule(freq=MINUTELY, interval=5, dtstart=…)`: the fields RedBeat stored that are set."""
    parts = []
    for field, value in encoded.items():
        if field in ("__type__", "dtstart_tz", "until_tz") or value is None:
            continue
        if field == "freq" and isinstance(value, int) and 0 <= value < len(RRULE_FREQUENCIES):
            value = RRULE_FREQUENCIES[value]
        elif field in ("dtstart", "until") and isinstance(value, (int, float)):
            offset = timedelta(minutes=float(encoded.get(f"{field}_tz") or 0))
            value = datetime.fromtimestamp(value, timezone(offset)).isoformat()
        else:
            value = _decode(value)
            if field == "byweekday":
                value = [WEEKDAYS[day] if isinstance(day, int) and 0 <= day < 7 else day
                         for day in (value if isinstance(value, list) else [value])]
        parts.append(f"{field}={value}")
    return f"rrule({', '.join(parts)})"


def _decode(value: Any) -> Any:
    """RedBeat's typed JSON values as plain ones: a datetime as an aware datetime, a weekday as its number."""
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("__type__")
    if kind == "datetime":
        return _datetime(value)
    if kind == "weekday":
        return value.get("wkday")
    return {key: _decode(item) for key, item in value.items()}


def _datetime(encoded: dict[str, Any]) -> datetime:
    # RedBeatJSONEncoder: `timezone` is a zone name, a UTC offset in seconds, or absent for UTC.
    tz_value = encoded.get("timezone", "UTC")
    tz = timezone(timedelta(seconds=tz_value)) if isinstance(tz_value, (int, float)) else zone(tz_value)
    fields = {part: int(encoded.get(part, 0)) for part in ("hour", "minute", "second", "microsecond")}
    return datetime(int(encoded["year"]), int(encoded["month"]), int(encoded["day"]), tzinfo=tz, **fields)


def _unix(encoded: Any) -> float | None:
    if isinstance(encoded, dict) and encoded.get("__type__") == "datetime":
        return unix_time(_datetime(encoded))
    return None


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
