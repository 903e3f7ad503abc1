"""django-celery-beat's tables, read with peewee: no Django needed here (celery-facts §5.3).

`django_celery_beat_periodictask` rows, each with one schedule row from `…_intervalschedule`,
`…_crontabschedule` (with its `timezone`), `…_solarschedule` or `…_clockedschedule`. Whole tables are read
(`SELECT *`: a few hundred rows at most) and joined here, so columns a django-celery-beat version lacks are
simply absent. The connection is read-only: SQLite opened with `mode=ro`, PostgreSQL with
`default_transaction_read_only`.

Django stores UTC when USE_TZ=True (the default) and naive local time otherwise; a naive time (SQLite, MySQL)
is read as UTC, so with USE_TZ=False it is off by the server's UTC offset. `last_run_at` and
`total_run_count` lag: beat writes them every 180 s (`sync_every`). One-off tasks are reported like any other:
`enabled` is False once django-celery-beat has run one.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlparse

from peewee import Database, DatabaseError, PostgresqlDatabase, SqliteDatabase

from webui.beat.entries import SOURCE_DJANGO, ScheduleEntry
from webui.beat.sources import SourceError
from webui.beat.sources.plain_values import entry_args, entry_kwargs, entry_options, unix_time
from webui.settings import mask_url_password

log = logging.getLogger(__name__)

TABLE = "django_celery_beat_periodictask"
SCHEDULE_TABLES = {  # the task's foreign key column → the schedule table it points at
    "interval_id": "django_celery_beat_intervalschedule",
    "crontab_id": "django_celery_beat_crontabschedule",
    "solar_id": "django_celery_beat_solarschedule",
    "clocked_id": "django_celery_beat_clockedschedule",
}
PERIOD_SECONDS = {"days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0, "microseconds": 1e-6}
CRON_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
CONNECT_TIMEOUT = 10

Row = dict[str, Any]


def read_django_beat(database_url: str) -> list[ScheduleEntry]:
    """Every django-celery-beat periodic task in the database at `database_url` (sqlite:/// or postgresql://)."""
    where = mask_url_password(database_url)
    with connected(database_url, where) as db:
        try:
            tasks = _rows(db, TABLE)
        except DatabaseError as exc:
            raise SourceError(f"no {TABLE} table in {where}: is django-celery-beat migrated there? ({exc})"
                              ) from exc
        schedules = {column: _rows_by_id(db, table) for column, table in SCHEDULE_TABLES.items()}
    entries = []
    for task in tasks:
        try:
            entries.append(_entry(task, schedules))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("django-celery-beat task %r cannot be read: %s: %s", task.get("name"),
                        type(exc).__name__, exc)
    return sorted(entries, key=lambda entry: entry.name)


# -- the database -----------------------------------------------------------------------------------------


@contextmanager
def connected(url: str, where: str, *, read_only: bool = True) -> Iterator[Database]:
    """A connection to django-celery-beat's database; read-only unless a control writes (webui.beat.controls)."""
    db = _open(url, where, read_only)
    try:
        db.connect()
    except DatabaseError as exc:
        raise SourceError(f"cannot connect to {where}: {exc}") from exc
    try:
        yield db
    finally:
        db.close()


def _open(url: str, where: str, read_only: bool) -> Database:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)  # as webui.store does
        if not path:
            raise SourceError(f"no file path in {where}: use sqlite:///PATH")
        if not os.path.isfile(path):
            raise SourceError(f"no SQLite database file at {path} ({where})")
        mode = "ro" if read_only else "rw"  # rw: never create a database that is not there
        return SqliteDatabase(f"file:{quote(os.path.abspath(path))}?mode={mode}", uri=True)
    if parsed.scheme in ("postgresql", "postgres"):
        name = unquote(parsed.path.lstrip("/"))
        if not name:
            raise SourceError(f"no database name in {where}")
        params: dict[str, Any] = {
            "host": parsed.hostname, "port": parsed.port,
            "user": unquote(parsed.username) if parsed.username else None,
            "password": unquote(parsed.password) if parsed.password else None,
            "connect_timeout": CONNECT_TIMEOUT, **dict(parse_qsl(parsed.query)),
        }
        if read_only:  # belt and braces: the reader only SELECTs, and the server refuses a write if one slipped in
            params["options"] = f"{params.get('options', '')} -c default_transaction_read_only=on".strip()
        return PostgresqlDatabase(name, prefer_psycopg3=True, autoconnect=False,
                                  **{key: value for key, value in params.items() if value is not None})
    raise SourceError(f"unsupported database URL {where!r}: use sqlite:///PATH or postgresql://…")


def _rows(db: Database, table: str) -> list[Row]:
    cursor = db.execute_sql(f"SELECT * FROM {table}")  # a fixed table name, never input
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _rows_by_id(db: Database, table: str) -> dict[Any, Row]:
    try:
        return {row["id"]: row for row in _rows(db, table)}
    except DatabaseError as exc:  # an old django-celery-beat without solar or clocked schedules
        log.debug("no %s table: %s", table, exc)
        return {}


# -- one task ---------------------------------------------------------------------------------------------


def _entry(task: Row, schedules: dict[str, dict[Any, Row]]) -> ScheduleEntry:
    name = str(task["name"])
    queue, options = entry_options(_options(task, name))
    count = task.get("total_run_count")
    return ScheduleEntry(
        source=SOURCE_DJANGO,
        name=name,
        task=str(task.get("task") or ""),
        schedule=_schedule_spec(task, schedules),
        args=entry_args(_json(task.get("args"), [], name, "args")),
        kwargs=entry_kwargs(_json(task.get("kwargs"), {}, name, "kwargs")),
        queue=queue,
        options=options,
        enabled=bool(task.get("enabled", True)),
        last_run_at=unix_time(_datetime(task.get("last_run_at"))),
        total_run_count=int(count) if count is not None else None,
        description=task.get("description") or None,
    )


def _options(task: Row, name: str) -> dict[str, Any]:
    """The apply_async options django-celery-beat's ModelEntry sends the task with."""
    options = {key: task.get(key) for key in ("queue", "exchange", "routing_key", "priority")
               if task.get(key) not in (None, "")}
    expires = _datetime(task.get("expires")) or task.get("expire_seconds")
    if expires:
        options["expires"] = expires
    headers = _json(task.get("headers"), {}, name, "headers")
    options["headers"] = {**(headers if isinstance(headers, dict) else {}), "periodic_task_name": name}
    return options


def _schedule_spec(task: Row, schedules: dict[str, dict[Any, Row]]) -> dict[str, Any]:
    interval = schedules["interval_id"].get(task.get("interval_id"))
    if interval is not None:
        seconds = float(interval["every"]) * PERIOD_SECONDS[str(interval["period"])]
        return {"kind": "interval", "seconds": seconds, "relative": False}
    crontab = schedules["crontab_id"].get(task.get("crontab_id"))
    if crontab is not None:
        fields = {field: str(crontab.get(field) or "*") for field in CRON_FIELDS}
        return {"kind": "crontab", **fields, "timezone": str(crontab.get("timezone") or "UTC")}
    solar = schedules["solar_id"].get(task.get("solar_id"))
    if solar is not None:
        return {"kind": "solar", "event": str(solar["event"]), "latitude": float(solar["latitude"]),
                "longitude": float(solar["longitude"])}
    clocked = schedules["clocked_id"].get(task.get("clocked_id"))
    if clocked is not None:
        return {"kind": "clocked", "at": unix_time(_datetime(clocked["clocked_time"]))}
    ids = {column: task.get(column) for column in SCHEDULE_TABLES if task.get(column) is not None}
    return {"kind": "unknown", "repr": f"no schedule row found for {ids or 'this task'}"}


def _json(text: Any, default: Any, name: str, column: str) -> Any:
    if text in (None, ""):
        return default
    try:
        return json.loads(text)
    except ValueError:
        # django-celery-beat disables such a task when it loads it; we show it without them.
        log.warning("django-celery-beat task %r: %s is not JSON: %.80r", name, column, text)
        return default


def _datetime(value: Any) -> datetime | None:
    """A DateTimeField's value, aware: psycopg gives datetimes, SQLite Django's ISO text (no zone: UTC)."""
    if value is None or value == "":
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
