"""Schedule specs: built from Celery's objects, and the fire times beat would compute from them."""
from __future__ import annotations

import json
import pickle
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab, schedule, solar

from webui.beat import schedule_spec
from webui.beat.schedule_spec import from_spec, next_due, period, previous_slot, spec_key, to_spec

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
HOUR = 3600.0
DAY = 86400.0


def ts(*fields: int, tz: timezone | ZoneInfo = UTC) -> float:
    return datetime(*fields, tzinfo=tz).timestamp()


def utc(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


def cron(minute: str = "*", hour: str = "*", day_of_week: str = "*", day_of_month: str = "*",
         month_of_year: str = "*", tz: str | None = None) -> dict:
    return {"kind": "crontab", "minute": minute, "hour": hour, "day_of_week": day_of_week,
            "day_of_month": day_of_month, "month_of_year": month_of_year, "timezone": tz}


def interval(seconds: float, relative: bool = False) -> dict:
    return {"kind": "interval", "seconds": seconds, "relative": relative}


def expanded(c: crontab) -> tuple:
    return c.minute, c.hour, c.day_of_week, c.day_of_month, c.month_of_year


# ---- to_spec / from_spec ----------------------------------------------------------------------------------

def test_it_reads_an_interval_from_a_celery_schedule_a_timedelta_or_a_number_of_seconds():
    assert to_spec(schedule(timedelta(seconds=30))) == interval(30.0)
    assert to_spec(schedule(timedelta(hours=1), relative=True)) == interval(3600.0, relative=True)
    assert to_spec(timedelta(minutes=5)) == interval(300.0)
    assert to_spec(10) == interval(10.0)
    assert to_spec(2.5) == interval(2.5)


def test_it_keeps_crontab_fields_as_the_user_wrote_them():
    assert to_spec(crontab(minute="*/15")) == cron(minute="*/15")
    assert to_spec(crontab(minute=0, hour=0, day_of_week="mon-fri")) == cron("0", "0", "mon-fri")
    assert to_spec(crontab(minute=[30, 0], hour=range(9, 12))) == cron("0,30", "9,10,11")


def test_a_plain_crontab_follows_the_app_timezone_even_after_celery_cached_it():
    c = crontab(minute=0, hour=9)
    c.tz = ZoneInfo("Asia/Tokyo")  # what Celery's cached_property leaves behind once beat has used it
    assert to_spec(c)["timezone"] is None


def test_a_crontab_subclass_with_its_own_timezone_keeps_it():
    class TzAwareCrontab(crontab):  # the shape of django-celery-beat's, which sets self.tz in __init__
        def __init__(self, *args, tz=UTC, **kwargs):
            self.tz = tz
            super().__init__(*args, **kwargs)

    assert to_spec(TzAwareCrontab(minute=0, hour=9, tz=PARIS))["timezone"] == "Europe/Paris"
    assert to_spec(TzAwareCrontab(minute=0, hour=9))["timezone"] == "UTC"


def test_it_reads_a_solar_schedule():
    assert to_spec(solar("sunset", 51.5, -0.1)) == {"kind": "solar", "event": "sunset", "latitude": 51.5,
                                                    "longitude": -0.1}


def test_it_reads_a_django_clocked_schedule_naive_times_in_the_app_timezone():
    class Clocked:  # django_celery_beat.clockedschedule.clocked keeps its time as clocked_time
        def __init__(self, at: datetime):
            self.clocked_time = at

    assert to_spec(Clocked(datetime(2026, 12, 1, 10, tzinfo=UTC))) == {"kind": "clocked",
                                                                       "at": ts(2026, 12, 1, 10)}
    assert to_spec(Clocked(datetime(2026, 12, 1, 10)), "Europe/Paris") == {"kind": "clocked",
                                                                           "at": ts(2026, 12, 1, 9)}


def test_anything_else_is_unknown_with_its_repr():
    class Rrule:
        def __repr__(self) -> str:
            return "<rrule: FREQ=WEEKLY>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert to_spec(Rrule()) == {"kind": "unknown", "repr": "<rrule: FREQ=WEEKLY>"}
    assert to_spec(Broken()) == {"kind": "unknown", "repr": "<Broken>"}
    assert to_spec(True)["kind"] == "unknown"
    assert len(to_spec("x" * 5000)["repr"]) <= 300


@pytest.mark.parametrize("original", [
    schedule(timedelta(seconds=45)),
    schedule(timedelta(days=1), relative=True),
    crontab(minute="*/15"),
    crontab(minute=0, hour=0, day_of_week="mon-fri"),
    crontab(minute=30, hour=4, day_of_month="1,15", month_of_year="*/3"),
    solar("sunrise", -33.87, 151.21),
])
def test_celery_objects_survive_a_round_trip_through_a_spec(original):
    spec = to_spec(original)
    rebuilt = from_spec(spec)
    assert to_spec(rebuilt) == spec
    assert json.loads(json.dumps(spec)) == spec
    assert type(rebuilt) is type(original)
    if isinstance(original, crontab):  # crontab.__eq__ also compares nowfun, which from_spec sets
        assert expanded(rebuilt) == expanded(original)
    elif isinstance(original, schedule):
        assert (rebuilt.run_every, rebuilt.relative) == (original.run_every, original.relative)


def test_a_spec_survives_pickling_of_the_rebuilt_schedule_like_beat_stores_it():
    rebuilt = from_spec(cron("0", "4"))
    assert to_spec(pickle.loads(pickle.dumps(rebuilt))) == cron("0", "4")


def test_from_spec_has_no_celery_object_for_one_offs_unknowns_or_bad_specs():
    assert from_spec({"kind": "clocked", "at": 1.0}) is None
    assert from_spec({"kind": "unknown", "repr": "x"}) is None
    assert from_spec(cron(minute="61")) is None
    assert from_spec(cron(tz="Mars/Olympus_Mons")) is None
    assert from_spec({"kind": "interval"}) is None
    assert from_spec({"kind": "solar", "event": "moonrise", "latitude": 0, "longitude": 0}) is None


def test_spec_key_is_stable_and_ignores_key_order_and_int_versus_float():
    a = {"kind": "interval", "seconds": 60, "relative": False}
    b = {"relative": False, "seconds": 60.0, "kind": "interval"}
    assert spec_key(a) == spec_key(b) == '{"kind":"interval","relative":false,"seconds":60.0}'
    assert spec_key(cron("0", "9")) != spec_key(cron("0", "9", tz="Europe/Paris"))
    assert spec_key(interval(60)) != spec_key(interval(60, relative=True))


# ---- next_due ---------------------------------------------------------------------------------------------

def test_an_interval_is_due_its_seconds_after_the_last_run():
    assert next_due(interval(30), 1000.5) == 1030.5
    assert next_due(interval(0.25), 10.0) == 10.25


def test_a_relative_interval_is_rounded_to_the_clock_in_the_app_timezone():
    # Celery: the last rounded boundary at or before last + interval, never at or before last.
    assert utc(next_due(interval(HOUR, relative=True), ts(2026, 1, 1, 10, 20))) == datetime(2026, 1, 1, 11,
                                                                                              tzinfo=UTC)
    daily = interval(DAY, relative=True)
    assert next_due(daily, ts(2026, 1, 1, 15), "Europe/Paris") == ts(2026, 1, 2, tz=PARIS)


def test_a_crontab_every_15_minutes():
    spec = cron(minute="*/15")
    assert next_due(spec, ts(2026, 5, 1, 10, 7, 30)) == ts(2026, 5, 1, 10, 15)
    assert next_due(spec, ts(2026, 5, 1, 10, 15)) == ts(2026, 5, 1, 10, 30)  # strictly after
    assert next_due(spec, ts(2026, 5, 1, 23, 50)) == ts(2026, 5, 2, 0, 0)


def test_a_daily_midnight_crontab():
    assert next_due(cron("0", "0"), ts(2026, 5, 1, 0, 0, 3)) == ts(2026, 5, 2)


def test_a_weekday_crontab_skips_the_weekend():
    spec = cron("0", "9", day_of_week="mon-fri")
    assert next_due(spec, ts(2026, 5, 1, 9, 0, 2)) == ts(2026, 5, 4, 9)  # Friday 1 May → Monday 4 May


def test_a_monthly_crontab_and_a_month_end():
    assert next_due(cron("0", "0", day_of_month="1"), ts(2026, 1, 15)) == ts(2026, 2, 1)
    assert next_due(cron("0", "0", day_of_month="31"), ts(2026, 4, 1)) == ts(2026, 5, 31)  # no 31 April


def test_a_yearly_crontab_and_a_leap_day():
    assert next_due(cron("0", "0", day_of_month="1", month_of_year="1"), ts(2026, 1, 1, 0, 0, 1)) == ts(2027, 1, 1)
    assert next_due(cron("0", "0", day_of_month="29", month_of_year="2"), ts(2026, 3, 1)) == ts(2028, 2, 29)


def test_celery_needs_both_the_day_of_month_and_the_day_of_week_unlike_cron():
    first_monday = cron("0", "0", day_of_week="mon", day_of_month="1-7")
    assert next_due(first_monday, ts(2026, 5, 1)) == ts(2026, 5, 4)
    assert next_due(first_monday, ts(2026, 5, 4, 1)) == ts(2026, 6, 1)


def test_celery_accepts_full_day_names_and_sunday_as_0():
    assert next_due(cron("0", "0", day_of_week="sunday"), ts(2026, 5, 1)) == ts(2026, 5, 3)
    assert next_due(cron("0", "0", day_of_week="0"), ts(2026, 5, 1)) == ts(2026, 5, 3)


def test_a_crontab_in_its_own_timezone_moves_in_utc_with_summer_time():
    paris_9am = cron("0", "9", tz="Europe/Paris")
    assert utc(next_due(paris_9am, ts(2026, 1, 10, 12))) == datetime(2026, 1, 11, 8, tzinfo=UTC)  # CET
    assert utc(next_due(paris_9am, ts(2026, 7, 10, 12))) == datetime(2026, 7, 11, 7, tzinfo=UTC)  # CEST


def test_a_crontab_without_a_timezone_follows_the_app_else_utc():
    nine = cron("0", "9")
    assert next_due(nine, ts(2026, 1, 10, 12)) == ts(2026, 1, 11, 9)
    assert next_due(nine, ts(2026, 1, 10, 12), "Europe/Paris") == ts(2026, 1, 11, 9, tz=PARIS)
    # the crontab's own timezone wins over the app's
    assert next_due(cron("0", "9", tz="UTC"), ts(2026, 1, 10, 12), "Europe/Paris") == ts(2026, 1, 11, 9)


def test_spring_forward_a_0230_crontab_fires_once_at_0330_summer_time_on_the_missing_hour():
    """Europe/Paris skips 02:00–03:00 on 29 March 2026. Celery reads the missing 02:30 with winter's
    offset, so the job runs at 01:30 UTC (03:30 CEST) that day, then back at 02:30 local (00:30 UTC)."""
    daily = cron("30", "2", tz="Europe/Paris")
    day_of = next_due(daily, ts(2026, 3, 28, 2, 30, tz=PARIS))
    assert utc(day_of) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert datetime.fromtimestamp(day_of, PARIS).strftime("%H:%M %Z") == "03:30 CEST"
    assert utc(next_due(daily, day_of)) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)


def test_fall_back_a_0230_crontab_fires_once_on_the_first_of_the_two_0230s():
    """02:00–03:00 happens twice in Paris on 25 October 2026; Celery fires at the first (CEST) 02:30 only."""
    daily = cron("30", "2", tz="Europe/Paris")
    first = next_due(daily, ts(2026, 10, 24, 2, 30, tz=PARIS))
    assert utc(first) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert utc(next_due(daily, first)) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # not 01:30 UTC on the 25th


def test_fall_back_celery_skips_the_repeated_hour_for_a_crontab_that_runs_within_it():
    """Worth knowing when judging "missed": a */15 crontab in Paris does not run during the second
    02:00–03:00 (01:00–02:00 UTC); after 02:45 CEST its next run is 03:00 CET, 75 minutes later."""
    quarter = cron("*/15", tz="Europe/Paris")
    assert utc(next_due(quarter, ts(2026, 10, 25, 0, 45))) == datetime(2026, 10, 25, 2, 0, tzinfo=UTC)


def test_solar_is_due_at_the_next_sunset():
    spec = {"kind": "solar", "event": "sunset", "latitude": 51.5, "longitude": -0.1}
    due = next_due(spec, ts(2026, 6, 1))
    assert datetime(2026, 6, 1, 20, 5, tzinfo=UTC) < utc(due) < datetime(2026, 6, 1, 20, 12, tzinfo=UTC)
    assert 86_000 < next_due(spec, due) - due < 86_500


def test_a_clocked_schedule_is_due_once():
    spec = {"kind": "clocked", "at": 5000.0}
    assert next_due(spec, 4000.0) == 5000.0
    assert next_due(spec, 5000.0) is None
    assert next_due(spec, 6000.0) is None


def test_the_answer_does_not_depend_on_the_wall_clock(monkeypatch):
    """Celery counts "remaining" from now(); we pin now, so a clock anywhere else changes nothing."""

    class Year2099(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2099, 1, 1, tzinfo=tz or UTC)

    import celery.app.base
    import celery.schedules
    import celery.utils.time

    for module in (celery.schedules, celery.utils.time, schedule_spec):
        monkeypatch.setattr(module, "datetime", Year2099)
    monkeypatch.setattr(celery.app.base.Celery, "now", lambda self: Year2099.now(UTC))
    monkeypatch.setattr(time, "time", lambda: 4_070_908_800.0)
    assert next_due(cron("0", "9", tz="Europe/Paris"), ts(2026, 1, 10, 12)) == ts(2026, 1, 11, 8)
    assert next_due(cron("*/15"), ts(2001, 5, 1, 10, 7)) == ts(2001, 5, 1, 10, 15)
    assert next_due(interval(HOUR, relative=True), ts(2026, 1, 1, 10, 20)) == ts(2026, 1, 1, 11)


@pytest.mark.parametrize("spec", [
    cron(minute="61"),
    cron(minute="*/0"),
    cron(hour="noon"),
    cron(day_of_week="7"),
    cron(day_of_month="30", month_of_year="2"),
    cron(minute="1,,2"),
    cron(tz="Not/AZone"),
    {"kind": "crontab", "minute": None, "hour": ["x"]},
    {"kind": "interval", "seconds": "soon"},
    {"kind": "interval", "seconds": 0},
    {"kind": "interval", "seconds": -5},
    {"kind": "interval", "seconds": float("nan")},
    {"kind": "solar", "event": "sunset", "latitude": 91, "longitude": 0},
    {"kind": "clocked"},
    {"kind": "unknown", "repr": "<rrule>"},
    {"kind": "martian"},
    {},
    "not a dict",
    None,
])
def test_a_spec_it_cannot_compute_gives_none_rather_than_an_error(spec):
    assert next_due(spec, ts(2026, 1, 1)) is None
    assert previous_slot(spec, ts(2026, 1, 1)) is None
    assert period(spec, ts(2026, 1, 1)) is None


@pytest.mark.parametrize("when", [float("nan"), float("inf"), 1e300, -1e300])
def test_an_impossible_time_gives_none(when):
    assert next_due(cron("0", "0"), when) is None
    assert previous_slot(cron("0", "0"), when) is None
    assert period(cron("0", "0"), when) is None


# ---- previous_slot ----------------------------------------------------------------------------------------

def test_the_midnight_job_that_ran_at_0023_was_23_minutes_late():
    fired = ts(2026, 5, 1, 0, 23)
    slot = previous_slot(cron("0", "0"), fired)
    assert slot == ts(2026, 5, 1)
    assert fired - slot == 23 * 60


def test_a_slot_time_is_its_own_previous_slot():
    assert previous_slot(cron("*/15"), ts(2026, 5, 1, 10, 15)) == ts(2026, 5, 1, 10, 15)
    assert previous_slot(cron("*/15"), ts(2026, 5, 1, 10, 14, 59)) == ts(2026, 5, 1, 10, 0)


def test_previous_slot_across_weekends_months_and_timezones():
    assert previous_slot(cron("0", "9", day_of_week="mon-fri"), ts(2026, 5, 4, 8)) == ts(2026, 5, 1, 9)
    assert previous_slot(cron("0", "0", day_of_month="31"), ts(2026, 5, 1)) == ts(2026, 3, 31)
    assert previous_slot(cron("0", "9", tz="Europe/Paris"), ts(2026, 7, 10, 7, 30)) == ts(2026, 7, 10, 7)


def test_previous_slot_of_a_yearly_or_leap_day_crontab_is_quick():
    started = time.perf_counter()
    assert previous_slot(cron("0", "0", day_of_month="1", month_of_year="1"), ts(2026, 12, 31)) == ts(2026, 1, 1)
    assert previous_slot(cron("0", "0", day_of_month="29", month_of_year="2"), ts(2026, 12, 31)) == ts(2024, 2, 29)
    # 29 February on a Monday: 2016, then not before 2044
    leap_monday = cron("0", "0", day_of_week="mon", day_of_month="29", month_of_year="2")
    assert previous_slot(leap_monday, ts(2043, 12, 31)) == ts(2016, 2, 29)
    assert time.perf_counter() - started < 1.0


def test_previous_slot_of_a_solar_event_is_the_last_sunset():
    spec = {"kind": "solar", "event": "sunset", "latitude": 51.5, "longitude": -0.1}
    slot = previous_slot(spec, ts(2026, 6, 2, 12))
    assert datetime(2026, 6, 1, 20, 5, tzinfo=UTC) < utc(slot) < datetime(2026, 6, 1, 20, 12, tzinfo=UTC)
    assert next_due(spec, slot - 1) == pytest.approx(slot, abs=1e-3)


def test_intervals_have_no_slots_and_a_clocked_time_is_its_own():
    assert previous_slot(interval(60), ts(2026, 1, 1)) is None
    assert previous_slot({"kind": "clocked", "at": 100.0}, 150.0) == 100.0
    assert previous_slot({"kind": "clocked", "at": 200.0}, 150.0) is None


# ---- period -----------------------------------------------------------------------------------------------

def test_the_period_of_an_interval_is_its_seconds():
    assert period(interval(90), 0.0) == 90.0


@pytest.mark.parametrize("spec, around, expected", [
    (cron("*/15"), ts(2026, 5, 1, 10, 7), 15 * 60),
    (cron("0", "0"), ts(2026, 5, 1, 12), DAY),
    (cron("0", "9,17"), ts(2026, 5, 1, 12), 8 * HOUR),  # gaps of 8 h and 16 h: the smaller
    (cron("0", "9", day_of_week="mon-fri"), ts(2026, 5, 1, 10), DAY),  # Friday: not the weekend's 3 days
    (cron("0", "0", day_of_month="1"), ts(2026, 1, 15), 28 * DAY),  # February
    (cron("0", "0", day_of_month="1", month_of_year="1"), ts(2026, 6, 1), 365 * DAY),
])
def test_the_period_of_a_crontab_is_its_smallest_gap_nearby(spec, around, expected):
    assert period(spec, around) == expected


def test_the_period_of_a_daily_crontab_is_shorter_on_the_day_summer_time_starts():
    assert period(cron("0", "12", tz="Europe/Paris"), ts(2026, 3, 28, 13)) == 23 * HOUR


def test_solar_repeats_daily_and_one_offs_have_no_period():
    assert period({"kind": "solar", "event": "sunset", "latitude": 51.5, "longitude": -0.1}, 0.0) == DAY
    assert period({"kind": "clocked", "at": 1.0}, 0.0) is None
    assert period({"kind": "unknown", "repr": "<x>"}, 0.0) is None

