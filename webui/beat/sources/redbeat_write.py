"""The beat controls' writes to celery-redbeat's keys: pause/resume and skip one entry.

RedBeat keeps no copy in memory: at every tick it loads the entries its zset says are due (score up to now
plus max_interval) and decodes each one's `definition` and `meta` afresh (`RedBeatSchedulerEntry.from_key`).
So a write here counts from beat's next tick:
- pause/resume: `definition.enabled`; a disabled entry's `is_due` says "not due, look again in 5 s". The rest
  of the definition is written back exactly as read.
- skip: `meta.last_run_at` becomes the skipped slot (`is_due` asks the schedule whether it is due since then)
  and the zset score the slot after it, as RedBeat's own `reschedule` writes both; `total_run_count` is kept.

An entry from the app's `beat_schedule` is rewritten from it when beat starts (`update_from_dict` saves its
definition), so pausing one of those lasts until beat restarts; `last_run_at` survives that.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import redis

from webui.beat.sources import SourceError


def set_enabled(client: redis.Redis, prefix: str, name: str, enabled: bool) -> None:
    """Pause (`enabled` False) or resume the RedBeat entry `name`."""
    key = prefix + name
    try:
        with client.pipeline() as pipe:
            pipe.watch(key)  # beat rewrites a definition only at its start; don't lose one written meanwhile
            definition = _object(pipe.hget(key, "definition"), key, "definition")
            definition["enabled"] = enabled
            pipe.multi()
            pipe.hset(key, "definition", json.dumps(definition))
            pipe.execute()
    except redis.WatchError as exc:
        raise SourceError(f"{key} changed while it was being written: try again") from exc
    except redis.RedisError as exc:
        raise SourceError(f"cannot write RedBeat's {key}: {type(exc).__name__}: {exc}") from exc


def skip_slot(client: redis.Redis, prefix: str, name: str, slot: float, following: float) -> None:
    """Count the slot due at `slot` (UNIX time) as run, so beat next sends the entry at `following`."""
    key = prefix + name
    try:
        with client.pipeline() as pipe:
            pipe.watch(key)  # beat's own run of this entry rewrites meta: let it win rather than mix the two
            _object(pipe.hget(key, "definition"), key, "definition")  # an entry, not a stray key
            raw_meta = pipe.hget(key, "meta")
            meta = _object(raw_meta, key, "meta") if raw_meta else {}
            meta["last_run_at"] = _encoded_time(slot)
            pipe.multi()
            pipe.hset(key, "meta", json.dumps(meta))
            pipe.zadd(f"{prefix}:schedule", {key: following})
            pipe.execute()
    except redis.WatchError as exc:
        raise SourceError(f"beat wrote {key} while it was being skipped (it may have just run): try again"
                          ) from exc
    except redis.RedisError as exc:
        raise SourceError(f"cannot write RedBeat's {key}: {type(exc).__name__}: {exc}") from exc


def _object(raw: Any, key: str, field: str) -> dict[str, Any]:
    if not raw:
        raise SourceError(f"no RedBeat entry at {key}: was it deleted?")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise SourceError(f"{key} {field} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SourceError(f"{key} {field} is a JSON {type(value).__name__}, not an object")
    return value


def _encoded_time(epoch: float) -> dict[str, Any]:
    """A UTC time as RedBeatJSONEncoder writes a datetime."""
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return {"__type__": "datetime", "year": moment.year, "month": moment.month, "day": moment.day,
            "hour": moment.hour, "minute": moment.minute, "second": moment.second,
            "microsecond": moment.microsecond, "timezone": "UTC"}
