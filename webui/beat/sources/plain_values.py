"""Plain values from what a scheduler keeps: the JSON-able args, kwargs, options and times of a ScheduleEntry.

The sources hold Python objects (app config, the pickled file) or decoded JSON (RedBeat, django-celery-beat);
every entry leaves here as data the store can keep as JSON and the pages can show.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)

_DROP = object()  # an option with no JSON form: left out of `options`


def plain(value: Any) -> Any:
    """`value` as JSON can hold it: containers recursed, times as ISO text, other objects as their repr."""
    converted = _plain(value)
    return _safe_repr(value) if converted is _DROP else converted


def entry_args(args: Any) -> list[Any]:
    """The positional arguments as a list (beat keeps a tuple, a list, or nothing)."""
    if args is None:
        return []
    if isinstance(args, (list, tuple)):
        return [plain(item) for item in args]
    return [plain(args)]


def entry_kwargs(kwargs: Any) -> dict[str, Any]:
    if not isinstance(kwargs, Mapping):
        return {}
    return {str(key): plain(value) for key, value in kwargs.items()}


def entry_options(options: Any) -> tuple[str | None, dict[str, Any]]:
    """(queue, options): the apply_async options that have a JSON form, the queue also on its own.

    A kombu Queue or Exchange object counts by its name; an option with no JSON form (a producer, a callback
    object) is left out, since no page could show it and no fire carries it.
    """
    if not isinstance(options, Mapping):
        return None, {}
    result: dict[str, Any] = {}
    for key, value in options.items():
        if key in ("queue", "exchange") and not isinstance(value, str) and hasattr(value, "name"):
            value = value.name
        converted = _plain(value)
        if converted is _DROP:
            log.debug("beat entry option %r has no JSON form (%s): left out", key, type(value).__name__)
            continue
        result[str(key)] = converted
    queue = result.get("queue")
    return (queue if isinstance(queue, str) and queue else None), result


def zone(name: str | tzinfo | None) -> tzinfo:
    """The timezone a name (or tzinfo) stands for; UTC for None or a name this machine does not know."""
    if isinstance(name, tzinfo):
        return name
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown timezone %r: times without a zone are read as UTC", name)
        return timezone.utc


def unix_time(value: datetime | None, naive_zone: tzinfo | str | None = None) -> float | None:
    """A datetime as UNIX time; a naive one is taken to be in `naive_zone` (UTC when None)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(naive_zone))
    return value.timestamp()


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    if isinstance(value, Mapping):  # also celery signatures, which are dicts
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    return _DROP


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not lose the entry
        return f"<{type(value).__name__}>"
