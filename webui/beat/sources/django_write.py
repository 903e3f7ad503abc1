"""The beat controls' writes to django-celery-beat's tables: pause/resume and skip one periodic task.

A connection of its own, read-write (the reader's, webui.beat.sources.django_db, is read-only), opened for one
control and closed after it. Each write also bumps `django_celery_beat_periodictasks.last_update`, as Django's
own save signal does, so a running DatabaseScheduler sees the change at its next tick (at most its
max_interval, 5 s by default) and reloads every enabled task.

Skipping needs two columns because of how the DatabaseScheduler keeps its record: `ModelEntry.is_due` asks the
schedule whether it is due since `last_run_at`, but a beat that fired the task since its last sync holds that
row "dirty" and, when it reloads, first writes its own `last_run_at` back over ours (`sync()` then
`all_as_schedule()`). So `last_run_at` is set to the skipped slot (what a beat that is not running, or has
nothing to sync, reads) and `start_time` to the slot after it: `is_due` refuses to run before `start_time`
whatever `last_run_at` says, and at `start_time` the task is due from either record.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from peewee import Database, DatabaseError, SqliteDatabase

from webui.beat.sources import SourceError
from webui.beat.sources.django_db import TABLE, connected
from webui.settings import mask_url_password

CHANGES_TABLE = "django_celery_beat_periodictasks"  # one row, ident 1: when any periodic task last changed


def set_enabled(database_url: str, name: str, enabled: bool) -> None:
    """Pause (`enabled` False) or resume the periodic task `name`."""
    _write(database_url, name, {"enabled": enabled})


def skip_slot(database_url: str, name: str, slot: float, following: float) -> None:
    """Count the slot due at `slot` (UNIX time) as done, so the task next runs at `following`."""
    _write(database_url, name, {"last_run_at": slot, "start_time": following})


def _write(database_url: str, name: str, values: dict[str, Any]) -> None:
    where = mask_url_password(database_url)
    with connected(database_url, where, read_only=False) as db:
        now = _stored_time(db, datetime.now(timezone.utc).timestamp())
        columns = {key: _stored_time(db, value) if isinstance(value, float) else value
                   for key, value in values.items()}
        columns["date_changed"] = now
        assignments = ", ".join(f"{column} = {db.param}" for column in columns)  # fixed names, never input
        try:
            with db.atomic():
                cursor = db.execute_sql(f"UPDATE {TABLE} SET {assignments} WHERE name = {db.param}",
                                        [*columns.values(), name])
                if cursor.rowcount != 1:
                    raise SourceError(f"no periodic task named {name!r} in {where}: was it deleted?")
                _mark_changed(db, now)
        except DatabaseError as exc:
            raise SourceError(f"cannot write to {TABLE} in {where}: {exc}") from exc


def _mark_changed(db: Database, now: Any) -> None:
    cursor = db.execute_sql(f"UPDATE {CHANGES_TABLE} SET last_update = {db.param} WHERE ident = 1", [now])
    if cursor.rowcount == 0:  # no task was ever saved through Django: the row does not exist yet
        db.execute_sql(f"INSERT INTO {CHANGES_TABLE} (ident, last_update) VALUES (1, {db.param})", [now])


def _stored_time(db: Database, epoch: float) -> Any:
    """A time as Django stores it with USE_TZ: SQLite holds naive UTC text, PostgreSQL a timestamptz."""
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    if isinstance(db, SqliteDatabase):
        return moment.replace(tzinfo=None).isoformat(sep=" ")
    return moment
