"""The app's `beat_schedule` as a schedule source: every form beat accepts, read into plain entries."""
from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from celery import Celery
from celery.schedules import crontab, schedule, solar
from kombu import Exchange, Queue

from tests.support.services import unavailable
from webui.beat.entries import ScheduleEntry
from webui.beat.sources.app_config import read_app_schedule


def by_name(entries: list[ScheduleEntry]) -> dict[str, ScheduleEntry]:
    return {entry.name: entry for entry in entries}


def make_app(beat_schedule: dict, **conf: object) -> Celery:
    app = Celery("beat_source_app", broker="memory://", set_as_current=False)
    app.conf.update(beat_schedule=beat_schedule, **conf)
    return app


def test_it_reads_intervals_in_every_form_beat_accepts() -> None:
    app = make_app({
        "seconds-as-number": {"task": "reports.tick", "schedule": 10, "args": (2, 3)},
        "timedelta-relative": {"task": "reports.tick", "schedule": timedelta(minutes=5), "relative": True},
        "schedule-object": {"task": "reports.tick", "schedule": schedule(timedelta(seconds=30))},
    }, result_backend="redis://127.0.0.1:6379/0")

    entries = by_name(read_app_schedule(app))

    assert entries["seconds-as-number"].schedule == {"kind": "interval", "seconds": 10.0, "relative": False}
    assert entries["seconds-as-number"].args == [2, 3]
    assert entries["timedelta-relative"].schedule == {"kind": "interval", "seconds": 300.0, "relative": True}
    assert entries["schedule-object"].schedule == {"kind": "interval", "seconds": 30.0, "relative": False}
    for entry in entries.values():
        assert (entry.source, entry.task, entry.last_run_at, entry.total_run_count) == (
            "app", "reports.tick", None, None)


def test_it_keeps_crontab_fields_as_written_and_a_crontab_zone_of_its_own() -> None:
    try:
        from django_celery_beat.tzcrontab import TzAwareCrontab
    except ImportError:
        unavailable("django-celery-beat is not installed (pip install -e '.[test]')")
    app = make_app({
        "weekday-mornings": {"task": "reports.daily", "schedule": crontab(minute=0, hour="7,8",
                                                                           day_of_week="mon-fri")},
        "quarter-hours": {"task": "reports.daily", "schedule": crontab(minute=[45, 0, 15, 30])},
        "paris-nine": {"task": "reports.daily",
                       "schedule": TzAwareCrontab(minute="0", hour="9", tz=ZoneInfo("Europe/Paris"))},
    }, timezone="America/New_York", result_backend="redis://127.0.0.1:6379/0")

    entries = by_name(read_app_schedule(app))

    assert entries["weekday-mornings"].schedule == {
        "kind": "crontab", "minute": "0", "hour": "7,8", "day_of_week": "mon-fri", "day_of_month": "*",
        "month_of_year": "*", "timezone": None}  # None: the app's timezone, as beat evaluates it
    assert entries["quarter-hours"].schedule["minute"] == "0,15,30,45"
    assert entries["paris-nine"].schedule["timezone"] == "Europe/Paris"
    assert entries["paris-nine"].schedule["hour"] == "9"


def test_it_reads_a_solar_schedule() -> None:
    try:
        sunset = solar("sunset", 51.5, -0.12)
    except Exception as exc:  # celery raises ImproperlyConfigured without ephem
        unavailable(f"celery's solar schedules need ephem: {exc}")
    app = make_app({"lights-on": {"task": "home.lights", "schedule": sunset, "kwargs": {"room": "hall"}}},
                   result_backend="redis://127.0.0.1:6379/0")

    [entry] = read_app_schedule(app)

    assert entry.schedule == {"kind": "solar", "event": "sunset", "latitude": 51.5, "longitude": -0.12}
    assert entry.kwargs == {"room": "hall"}


def test_it_gives_options_as_json_with_the_queue_by_name() -> None:
    app = make_app({
        "queue-name": {"task": "t", "schedule": 60, "options": {"queue": "reports", "priority": 5, "expires": 50}},
        "kombu-objects": {"task": "t", "schedule": 60,
                          "options": {"queue": Queue("bulk"), "exchange": Exchange("bulk-x"),
                                      "routing_key": "bulk.daily", "producer": object()}},
        "no-options": {"task": "t", "schedule": 60},
    }, result_backend="redis://127.0.0.1:6379/0")

    entries = by_name(read_app_schedule(app))

    assert entries["queue-name"].queue == "reports"
    assert entries["queue-name"].options == {"queue": "reports", "priority": 5, "expires": 50}
    assert entries["kombu-objects"].queue == "bulk"
    # An object with no JSON form (here a producer) is left out rather than shown as a repr.
    assert entries["kombu-objects"].options == {"queue": "bulk", "exchange": "bulk-x", "routing_key": "bulk.daily"}
    assert (entries["no-options"].queue, entries["no-options"].options) == (None, {})
    for entry in entries.values():
        json.dumps([entry.schedule, entry.args, entry.kwargs, entry.options])


def test_it_adds_the_backend_cleanup_entry_when_beat_would() -> None:
    # Without a backend that expires results itself, beat installs celery.backend_cleanup (04:00 daily).
    plain = by_name(read_app_schedule(make_app({})))
    assert list(plain) == ["celery.backend_cleanup"]
    assert plain["celery.backend_cleanup"].schedule == {
        "kind": "crontab", "minute": "0", "hour": "4", "day_of_week": "*", "day_of_month": "*",
        "month_of_year": "*", "timezone": None}
    assert plain["celery.backend_cleanup"].options == {"expires": 43200}

    assert read_app_schedule(make_app({}, result_backend="redis://127.0.0.1:6379/0")) == []
    assert read_app_schedule(make_app({}, result_expires=None)) == []


def test_it_reports_the_rest_when_one_item_is_broken() -> None:
    app = make_app({"broken": "every day", "fine": {"task": "t", "schedule": 5}},
                   result_backend="redis://127.0.0.1:6379/0")

    assert [entry.name for entry in read_app_schedule(app)] == ["fine"]


@pytest.mark.parametrize("beat_schedule", [None, {}])
def test_it_reads_nothing_from_an_empty_schedule(beat_schedule: dict | None) -> None:
    app = make_app({}, result_backend="redis://127.0.0.1:6379/0")
    app.conf.beat_schedule = beat_schedule
    assert read_app_schedule(app) == []
