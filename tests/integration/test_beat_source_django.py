"""django-celery-beat's tables as a schedule source, on SQLite and PostgreSQL, read without Django.

The schema comes from django-celery-beat's own migrations and the rows from Django's ORM, both in a child
process (this file run as a script), so Django never loads in the test process, as it never loads in ours.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.processes import REPO_ROOT, child_env
from tests.support.services import create_database, drop_database, unavailable, with_path
from webui.beat.entries import ScheduleEntry
from webui.beat.sources import SourceError
from webui.beat.sources.django_db import read_django_beat

LAST_RUN = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=timezone.utc)
EXPIRES = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
CLOCKED_AT = datetime(2031, 6, 7, 8, 9, 10, tzinfo=timezone.utc)


def django_beat_database(database_url: str) -> None:
    """Migrate django-celery-beat into `database_url` and add its periodic tasks, in a child process."""
    try:
        import django  # noqa: F401
        import django_celery_beat  # noqa: F401
    except ImportError as exc:
        unavailable(f"django and django-celery-beat are needed ({exc}): pip install -e '.[test]'")
    done = subprocess.run([sys.executable, __file__, database_url], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, env=child_env({"PYTHONPATH": str(REPO_ROOT)}))
    assert done.returncode == 0, f"creating django-celery-beat rows failed:\n{done.stdout}\n{done.stderr}"


def by_name(entries: list[ScheduleEntry]) -> dict[str, ScheduleEntry]:
    return {entry.name: entry for entry in entries}


def test_it_reads_periodic_tasks_with_every_kind_of_schedule(database_url: str) -> None:
    django_beat_database(database_url)
    sqlite_file = Path(unquote(urlsplit(database_url).path)[1:]) if database_url.startswith("sqlite") else None
    before = hashlib.sha256(sqlite_file.read_bytes()).hexdigest() if sqlite_file else None

    entries = by_name(read_django_beat(database_url))

    if sqlite_file:
        assert hashlib.sha256(sqlite_file.read_bytes()).hexdigest() == before  # read, never written
    assert set(entries) == {"every-30s", "has-run", "weekday-nine-paris", "lights", "once"}
    every = entries["every-30s"]
    assert every.schedule == {"kind": "interval", "seconds": 30.0, "relative": False}
    assert (every.source, every.task, every.args, every.kwargs) == ("django", "reports.tick", [1, 2], {"x": 1})
    assert every.queue == "fast"
    # The options django-celery-beat's ModelEntry sends with, periodic_task_name header included.
    assert every.options == {"queue": "fast", "priority": 5,
                             "headers": {"tenant": "acme", "periodic_task_name": "every-30s"}}
    assert every.description == "Every thirty seconds"
    assert (every.last_run_at, every.total_run_count, every.enabled) == (None, 0, True)

    has_run = entries["has-run"]
    assert has_run.schedule == {"kind": "interval", "seconds": 7200.0, "relative": False}
    assert (has_run.last_run_at, has_run.total_run_count) == (LAST_RUN.timestamp(), 4)
    assert datetime.fromisoformat(has_run.options["expires"]) == EXPIRES
    assert has_run.queue is None and has_run.description is None

    assert entries["weekday-nine-paris"].schedule == {
        "kind": "crontab", "minute": "0", "hour": "9", "day_of_week": "1-5", "day_of_month": "*",
        "month_of_year": "*", "timezone": "Europe/Paris"}
    lights = entries["lights"]
    assert lights.schedule == {"kind": "solar", "event": "sunset", "latitude": 51.5, "longitude": -0.12}
    assert lights.enabled is False
    # A one-off task is reported like any other; `enabled` says whether it may still run.
    assert entries["once"].schedule == {"kind": "clocked", "at": CLOCKED_AT.timestamp()}
    for entry in entries.values():
        json.dumps([entry.schedule, entry.args, entry.kwargs, entry.options])


def test_it_says_when_django_celery_beat_was_never_migrated_there(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    with pytest.raises(SourceError, match="no django_celery_beat_periodictask table in sqlite:///.*empty.sqlite3: "
                                          "is django-celery-beat migrated there?"):
        read_django_beat(f"sqlite:///{empty}")


def test_it_masks_the_password_when_a_postgresql_database_has_no_tables(postgres_admin: str) -> None:
    url = create_database(postgres_admin)
    parts = urlsplit(url)
    with_password = parts._replace(
        netloc=f"{parts.username or 'postgres'}:s3cret@{parts.hostname}:{parts.port or 5432}").geturl()
    try:
        # Missing tables here (trust auth ignores the password); a server that checks it refuses to connect.
        with pytest.raises(SourceError, match="no django_celery_beat_periodictask table|cannot connect") as raised:
            read_django_beat(with_password)
    finally:
        drop_database(url, postgres_admin)
    assert "s3cret" not in str(raised.value)
    assert ":***@" in str(raised.value)


def test_it_says_when_there_is_no_database(tmp_path: Path, postgres_admin: str) -> None:
    with pytest.raises(SourceError, match="no SQLite database file at"):
        read_django_beat(f"sqlite:///{tmp_path / 'missing.sqlite3'}")
    assert not (tmp_path / "missing.sqlite3").exists()  # opened read-only: nothing created
    with pytest.raises(SourceError, match="cannot connect to"):
        read_django_beat(with_path(postgres_admin, "webui_t_does_not_exist"))
    with pytest.raises(SourceError, match="unsupported database URL"):
        read_django_beat("mysql://beat@localhost/beat")


# -- the child process: Django, django-celery-beat's migrations and its ORM -------------------------------


def _django_settings(database_url: str) -> dict:
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parts.path)[1:]}
    else:
        database = {"ENGINE": "django.db.backends.postgresql", "NAME": parts.path.lstrip("/"),
                    "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
                    "HOST": parts.hostname or "", "PORT": str(parts.port or "")}
    return {"INSTALLED_APPS": ["django_celery_beat"], "DATABASES": {"default": database}, "USE_TZ": True,
            "TIME_ZONE": "UTC", "CELERY_TIMEZONE": "UTC"}


def _fill(database_url: str) -> None:
    from zoneinfo import ZoneInfo

    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(**_django_settings(database_url))
    django.setup()
    call_command("migrate", "django_celery_beat", verbosity=0)

    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        SolarSchedule,
    )

    every_30s = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    every_2h = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.HOURS)
    paris = CrontabSchedule.objects.create(minute="0", hour="9", day_of_week="1-5",
                                           timezone=ZoneInfo("Europe/Paris"))
    sunset = SolarSchedule.objects.create(event="sunset", latitude="51.5", longitude="-0.12")
    clocked = ClockedSchedule.objects.create(clocked_time=CLOCKED_AT)
    PeriodicTask.objects.create(name="every-30s", task="reports.tick", interval=every_30s, args=json.dumps([1, 2]),
                                kwargs=json.dumps({"x": 1}), queue="fast", priority=5,
                                headers=json.dumps({"tenant": "acme"}), description="Every thirty seconds")
    PeriodicTask.objects.create(name="has-run", task="reports.tick", interval=every_2h, last_run_at=LAST_RUN,
                                total_run_count=4, expires=EXPIRES)
    PeriodicTask.objects.create(name="weekday-nine-paris", task="reports.daily", crontab=paris)
    PeriodicTask.objects.create(name="lights", task="home.lights", solar=sunset, enabled=False)
    PeriodicTask.objects.create(name="once", task="reports.once", clocked=clocked, one_off=True)


if __name__ == "__main__":
    _fill(sys.argv[1])
