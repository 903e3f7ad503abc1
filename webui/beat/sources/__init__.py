"""Schedule sources: read-only readers, each returning `list[ScheduleEntry]` (webui.beat.entries).

- `app_config.read_app_schedule(app)`: the app's `beat_schedule` (and the `celery.backend_cleanup` entry beat
  adds itself), source "app".
- `schedule_file.read_schedule_file(path, app_timezone)`: the default PersistentScheduler's shelve file
  (`celerybeat-schedule`), read without beat's lock, source "file".
- `redbeat.read_redbeat(redis_client, prefix)`: celery-redbeat's keys in Redis, source "redbeat".
- `django_db.read_django_beat(database_url)`: django-celery-beat's tables, SQLite or PostgreSQL, source "django".

None of them ever writes to what it reads. A source that cannot be read at all raises `SourceError` with a
message for the beat page; an entry that cannot be decoded is logged and the others are still returned.
"""
from __future__ import annotations


class SourceError(Exception):
    """A schedule source cannot be read (missing file, bad URL, missing tables); the message says why."""
