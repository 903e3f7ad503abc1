"""Which schedule sources to read, found from the settings and the app, and one pass over all of them.

Every source is optional. The app's `beat_schedule` is read whenever an app is given; the schedule file when
one is named or the app's `beat_schedule_filename` exists here; RedBeat when its URL is set, or when the app's
broker is Redis and RedBeat's schedule key is there; django-celery-beat when its database URL is set. A source
that fails is reported with its error and the others are still read.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

from webui.beat.entries import SOURCE_APP, SOURCE_DJANGO, SOURCE_FILE, SOURCE_REDBEAT, ScheduleEntry
from webui.settings import mask_url_password

log = logging.getLogger(__name__)

DEFAULT_REDBEAT_PREFIX = "redbeat:"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass
class SourceReport:
    """How one source's read went, for the beat page: how many entries, or why none."""

    where: str  # what was read, passwords masked
    entries: int = 0
    error: str | None = None
    read_at: float = 0.0


@dataclass
class SourcePass:
    entries: list[ScheduleEntry] = field(default_factory=list)
    reports: dict[str, SourceReport] = field(default_factory=dict)

    @property
    def read_ok(self) -> set[str]:
        """The sources that answered: their missing entries are removed, a failed source's are kept."""
        return {name for name, report in self.reports.items() if report.error is None}


class SourceSet:
    """The sources this monitor reads, decided once from the settings and the app."""

    def __init__(self, app: Celery | None, settings: Any, app_given: bool) -> None:
        self.app = app
        self.timezone = _app_timezone(app)
        self._readers: dict[str, tuple[str, Callable[[], list[ScheduleEntry]]]] = {}
        self._redis: redis.Redis | None = None
        if app is not None and app_given:
            self._readers[SOURCE_APP] = ("the app's beat_schedule", lambda: _read_app(app))
        path = settings.beat_schedule_file or _default_schedule_file(app, app_given)
        if path:
            self._readers[SOURCE_FILE] = (path, lambda: _read_file(path, self.timezone))
        redbeat_url, prefix = redbeat_location(app, settings)
        if redbeat_url:
            self._redis = redis.Redis.from_url(redbeat_url, socket_timeout=5, socket_connect_timeout=5)
            explicit = bool(settings.beat_redbeat_url)
            self._readers[SOURCE_REDBEAT] = (
                f"{mask_url_password(redbeat_url)} keys {prefix}*",
                lambda: _read_redbeat(self._redis, prefix, explicit))
        if settings.beat_django_database:
            url = settings.beat_django_database
            self._readers[SOURCE_DJANGO] = (mask_url_password(url), lambda: _read_django(url))

    @property
    def names(self) -> list[str]:
        return list(self._readers)

    def read(self) -> SourcePass:
        result = SourcePass()
        for name, (where, reader) in self._readers.items():
            report = result.reports[name] = SourceReport(where, read_at=time.time())
            try:
                entries = reader()
            except _NotThere:
                del result.reports[name]
                continue
            except Exception as exc:  # noqa: BLE001 - one broken source must not hide the others
                report.error = f"{type(exc).__name__}: {exc}" if not _is_source_error(exc) else str(exc)
                log.warning("reading beat schedules from %s failed: %s", where, report.error)
                continue
            report.entries = len(entries)
            result.entries.extend(entries)
        return _prefer_the_file(result)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def _prefer_the_file(result: SourcePass) -> SourcePass:
    """The app's beat_schedule and the file of the beat running it list the same entries: keep the file's, which
    knows when each last ran. (An app entry beat has not written to its file yet stays.)"""
    in_file = {e.name for e in result.entries if e.source == SOURCE_FILE}
    if in_file:
        result.entries = [e for e in result.entries if not (e.source == SOURCE_APP and e.name in in_file)]
    return result


class _NotThere(Exception):
    """A source found by guessing turned out not to exist: not an error, just nothing to read."""


def _is_source_error(exc: Exception) -> bool:
    from webui.beat.sources import SourceError

    return isinstance(exc, SourceError)


def _app_timezone(app: Celery | None) -> str | None:
    if app is None:
        return None
    return str(app.conf.timezone) if app.conf.timezone else "UTC"


def _default_schedule_file(app: Celery | None, app_given: bool) -> str | None:
    if app is None or not app_given:
        return None
    name = app.conf.beat_schedule_filename or "celerybeat-schedule"
    # gdbm writes the name itself, dbm.dumb writes NAME.dat/.dir: either means beat ran here.
    if any(os.path.exists(name + suffix) for suffix in ("", ".db", ".dat")):
        return os.path.abspath(name)
    return None


def redbeat_location(app: Celery | None, settings: Any) -> tuple[str | None, str]:
    """RedBeat's Redis URL (None: no RedBeat to read) and key prefix; the beat controls write there too."""
    conf = app.conf if app is not None else {}
    prefix = settings.beat_redbeat_prefix or conf.get("redbeat_key_prefix") or DEFAULT_REDBEAT_PREFIX
    if settings.beat_redbeat_url:
        return settings.beat_redbeat_url, prefix
    url = conf.get("redbeat_redis_url") or (str(app.conf.broker_url or "") if app is not None else "")
    if isinstance(url, str) and url.startswith(REDIS_SCHEMES):
        return url, prefix
    return None, prefix


def _read_app(app: Celery) -> list[ScheduleEntry]:
    from webui.beat.sources.app_config import read_app_schedule

    return read_app_schedule(app)


def _read_file(path: str, timezone: str | None) -> list[ScheduleEntry]:
    from webui.beat.sources.schedule_file import read_schedule_file

    return read_schedule_file(path, timezone)


def _read_redbeat(client: redis.Redis | None, prefix: str, explicit: bool) -> list[ScheduleEntry]:
    from webui.beat.sources.redbeat import read_redbeat

    assert client is not None
    # Guessed from a Redis broker: read only when RedBeat's schedule is there, so a cluster without RedBeat
    # shows no RedBeat source at all (and costs one EXISTS per pass).
    if not explicit and not client.exists(f"{prefix}:schedule"):
        raise _NotThere
    return read_redbeat(client, prefix)


def _read_django(url: str) -> list[ScheduleEntry]:
    from webui.beat.sources.django_db import read_django_beat

    return read_django_beat(url)
