"""Schedules in words, as the beat pages show them."""
from __future__ import annotations

import pytest

from webui.beat.describe import describe


def cron(minute: str = "*", hour: str = "*", day_of_week: str = "*", day_of_month: str = "*",
         month_of_year: str = "*", tz: str | None = None) -> dict:
    return {"kind": "crontab", "minute": minute, "hour": hour, "day_of_week": day_of_week,
            "day_of_month": day_of_month, "month_of_year": month_of_year, "timezone": tz}


@pytest.mark.parametrize("seconds, words", [
    (1, "Every second"),
    (5, "Every 5 seconds"),
    (90, "Every 90 seconds"),
    (60, "Every minute"),
    (300.0, "Every 5 minutes"),
    (5400, "Every 90 minutes"),
    (3600, "Every hour"),
    (7200, "Every 2 hours"),
    (86400, "Every day"),
    (3 * 86400, "Every 3 days"),
    (604800, "Every week"),
    (1209600, "Every 2 weeks"),
    (1.5, "Every 1.5 seconds"),
    (90.5, "Every 90.5 seconds"),
    (0.25, "Every 0.25 seconds"),
])
def test_an_interval_is_worded_in_the_largest_unit_that_divides_it(seconds, words):
    assert describe({"kind": "interval", "seconds": seconds, "relative": False}) == words


@pytest.mark.parametrize("seconds, words", [
    (900, "Every 15 minutes, on the minute"),
    (3600, "Every hour, on the hour"),
    (86400, "Every day, at midnight"),
    (10, "Every 10 seconds"),
])
def test_a_relative_interval_says_what_celery_aligns_it_to(seconds, words):
    assert describe({"kind": "interval", "seconds": seconds, "relative": True}) == words


def test_an_interval_that_never_waits_says_so():
    assert describe({"kind": "interval", "seconds": 0, "relative": False}) == \
        "Every 0 seconds (runs at every beat tick)"


@pytest.mark.parametrize("spec, words", [
    (cron("*/15"), "Every 15 minutes"),
    (cron(), "Every minute"),
    (cron("0", "0"), "At 00:00"),
    (cron("0", "0", "mon-fri"), "At 00:00, Monday through Friday"),
    (cron("30", "17", "1-5"), "At 17:30, Monday through Friday"),
    (cron("0", "9", "0"), "At 09:00, only on Sunday"),
    (cron("0", "9", "sun"), "At 09:00, only on Sunday"),
    (cron("0", "9", "mon,wed,fri"), "At 09:00, only on Monday, Wednesday, and Friday"),
    (cron("0", "0", day_of_month="1"), "At 00:00, on day 1 of the month"),
    (cron("0", "0", day_of_month="1", month_of_year="1"), "At 00:00, on day 1 of the month, only in January"),
    (cron("0", "4", month_of_year="jan,jul"), "At 04:00, only in January and July"),
    (cron("0", "*/2"), "Every 2 hours"),
    (cron("0", "0,12"), "At 00:00 and 12:00"),
    (cron("15", "10", day_of_month="1,15"), "At 10:15, on day 1 and 15 of the month"),
    (cron("*/15", "9-17"), "Every 15 minutes, between 09:00 and 17:59"),
])
def test_a_crontab_is_worded_by_cron_descriptor_in_24_hour_time(spec, words):
    assert describe(spec) == words


def test_celery_day_and_month_names_of_any_length_are_understood():
    assert describe(cron("0", "0", "Monday-Friday")) == "At 00:00, Monday through Friday"
    assert describe(cron("0", "0", month_of_year="january")) == "At 00:00, only in January"


def test_both_days_restricted_reads_as_both_because_celery_needs_both():
    # cron would run on day 1–7 *or* on Mondays; Celery runs on the first Monday of the month only
    assert describe(cron("0", "0", "mon", day_of_month="1-7")) == \
        "At 00:00, between day 1 and 7 of the month, only on Monday"
    assert describe(cron("0", "0", "mon", day_of_month="29", month_of_year="2")) == \
        "At 00:00, on day 29 of the month, only on Monday, only in February"


def test_a_crontab_with_its_own_timezone_names_it():
    assert describe(cron("0", "9", tz="Europe/Paris")) == "At 09:00 (Europe/Paris)"
    assert describe(cron("0", "0", "mon-fri", tz="America/New_York")) == \
        "At 00:00, Monday through Friday (America/New_York)"


@pytest.mark.parametrize("spec, words", [
    (cron("61", "0"), "61 0 * * *"),  # cron-descriptor would say "At 00:61"; Celery rejects it
    (cron("0", "0", "7"), "0 0 * * 7"),  # 7 is Sunday in cron, invalid in Celery
    (cron("*/0"), "*/0 * * * *"),
    (cron("0", "0", day_of_month="L"), "0 0 L * *"),  # cron's "last day", not Celery's
    (cron("0", "0", day_of_month="30", month_of_year="2"), "0 0 30 2 *"),
    (cron("banana", tz="Europe/Paris"), "banana * * * * (Europe/Paris)"),
])
def test_a_crontab_celery_would_reject_is_shown_as_written(spec, words):
    assert describe(spec) == words


def test_missing_crontab_fields_mean_every_value_as_in_celery():
    assert describe({"kind": "crontab", "minute": "0", "hour": None}) == "Every hour"


def test_an_unknown_timezone_still_words_the_fields():
    assert describe(cron("0", "9", tz="Mars/Olympus_Mons")) == "At 09:00 (Mars/Olympus_Mons)"


@pytest.mark.parametrize("event, words", [
    ("sunset", "At sunset (lat 51.5, lon -0.1)"),
    ("sunrise", "At sunrise (lat 51.5, lon -0.1)"),
    ("solar_noon", "At solar noon (lat 51.5, lon -0.1)"),
    ("dawn_civil", "At civil dawn (lat 51.5, lon -0.1)"),
    ("dusk_astronomical", "At astronomical dusk (lat 51.5, lon -0.1)"),
])
def test_a_solar_schedule_names_the_event_and_the_place(event, words):
    assert describe({"kind": "solar", "event": event, "latitude": 51.5, "longitude": -0.1}) == words


def test_whole_degrees_have_no_trailing_zero():
    assert describe({"kind": "solar", "event": "sunset", "latitude": 0.0, "longitude": 10}) == \
        "At sunset (lat 0, lon 10)"


def test_a_clocked_schedule_is_a_one_off_in_utc():
    assert describe({"kind": "clocked", "at": 1796119200.0}) == "Once, at 2026-12-01 10:00:00 UTC"


def test_an_unknown_schedule_shows_its_repr():
    assert describe({"kind": "unknown", "repr": "<rrule: FREQ=WEEKLY>"}) == "<rrule: FREQ=WEEKLY>"
    assert describe({"kind": "unknown"}) == "Custom schedule"


@pytest.mark.parametrize("spec", [
    None, "every day", 42, [], {}, {"kind": "interval"}, {"kind": "interval", "seconds": "soon"},
    {"kind": "interval", "seconds": float("inf")}, {"kind": "clocked", "at": 1e300},
    {"kind": "solar", "event": "sunset"}, {"kind": "martian"},
])
def test_describe_never_raises(spec):
    assert isinstance(describe(spec), str) and describe(spec)
