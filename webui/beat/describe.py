"""A schedule spec in words, for the beat pages: "Every 5 minutes", "At 00:00, Monday through Friday".

Crontabs are worded by cron-descriptor, with two Celery differences taken care of here: Celery accepts
day and month names of any length ("monday", "january"), and Celery runs only on days that match *both*
day of month and day of week, where cron (and so cron-descriptor's wording) means either.
describe() never raises: whatever it cannot word, it shows as written.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from cron_descriptor import CasingTypeEnum, DescriptionTypeEnum, ExpressionDescriptor, Options

from webui.beat.schedule_spec import CLOCKED, CRONTAB, INTERVAL, SOLAR, UNKNOWN, from_spec

# Largest unit first: an interval is worded in the largest unit that divides it exactly.
_UNITS = (("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))
# A relative interval is rounded by Celery to the resolution of its unit (celery.utils.time.delta_resolution).
_ALIGNMENT = ((86_400, ", at midnight"), (3_600, ", on the hour"), (60, ", on the minute"))

_SOLAR_EVENTS = {
    "dawn_astronomical": "astronomical dawn",
    "dawn_nautical": "nautical dawn",
    "dawn_civil": "civil dawn",
    "sunrise": "sunrise",
    "solar_noon": "solar noon",
    "sunset": "sunset",
    "dusk_civil": "civil dusk",
    "dusk_nautical": "nautical dusk",
    "dusk_astronomical": "astronomical dusk",
}
_NAME = re.compile(r"[A-Za-z]+")


def describe(spec: dict[str, Any]) -> str:
    """The schedule in words; never raises, since specs come from stores we do not control."""
    try:
        kind = spec.get("kind")
        if kind == INTERVAL:
            return describe_interval(float(spec["seconds"]), bool(spec.get("relative")))
        if kind == CRONTAB:
            return describe_crontab(spec)
        if kind == SOLAR:
            event = str(spec["event"])
            words = _SOLAR_EVENTS.get(event, event.replace("_", " "))
            return f"At {words} (lat {_number(spec['latitude'])}, lon {_number(spec['longitude'])})"
        if kind == CLOCKED:
            at = datetime.fromtimestamp(float(spec["at"]), timezone.utc)
            return f"Once, at {at:%Y-%m-%d %H:%M:%S} UTC"
        if kind == UNKNOWN:
            return str(spec.get("repr") or "Custom schedule")
    except Exception:  # describing is best effort: a page must render whatever a store holds
        pass
    return f"Unrecognised schedule: {_short(spec)}"


def describe_interval(seconds: float, relative: bool = False) -> str:
    """ "Every 30 seconds", "Every 2 hours", "Every 90 minutes": the largest unit that divides exactly.

    A fraction of a second stays in seconds ("Every 1.5 seconds") rather than becoming "1.5 minutes" for
    90 s, which readers must convert back anyway.
    """
    if not seconds > 0:
        return f"Every {_number(seconds)} seconds (runs at every beat tick)"
    text = f"Every {_number(seconds)} seconds"
    for unit, size in _UNITS:
        count = seconds / size
        if count >= 1 and count == int(count):
            text = f"Every {unit}" if count == 1 else f"Every {int(count)} {unit}s"
            break
    if relative:
        text += next((words for size, words in _ALIGNMENT if seconds >= size), "")
    return text


def describe_crontab(spec: dict[str, Any]) -> str:
    """cron-descriptor's wording in 24-hour time, plus " (Europe/Paris)" when the crontab has its own zone.

    A crontab Celery would reject, or cron-descriptor cannot word, is shown as its raw "m h dom mon dow".
    """
    # a missing field (or None) is "*", as in Celery's crontab
    fields = ["*" if spec.get(name) is None else str(spec[name])
              for name in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")]
    zone = spec.get("timezone")
    suffix = f" ({zone})" if zone else ""
    raw = " ".join(fields)
    if from_spec({**spec, "timezone": None}) is None:  # Celery's parser decides what is valid, not cron's
        return raw + suffix
    minute, hour, dom, month, dow = fields
    # Celery reads a name by its first three letters ("monday", "January"); cron-descriptor wants "mon", "jan".
    month, dow = _abbreviate(month), _abbreviate(dow)
    try:
        if dom != "*" and dow != "*":
            text = _both_days(minute, hour, dom, month, dow)
        else:
            text = ExpressionDescriptor(f"{minute} {hour} {dom} {month} {dow}", _options()).get_description()
    except Exception:  # cron-descriptor raises its own FormatError, and worse on odd input
        return raw + suffix
    return text + suffix


def _both_days(minute: str, hour: str, dom: str, month: str, dow: str) -> str:
    """Both days restricted: Celery needs both to match ("on day 1 through 7 …, only on Monday").

    cron-descriptor words this case as cron's either-or ("…, or on Monday"), so we word the day of week
    from the same crontab without its day of month and put it after the day-of-month part.
    """
    options = _options()
    text = ExpressionDescriptor(f"{minute} {hour} {dom} {month} *", options).get_description()
    day_of_month = ExpressionDescriptor(f"{minute} {hour} {dom} {month} *", options).get_description(
        DescriptionTypeEnum.DAYOFMONTH)
    day_of_week = ExpressionDescriptor(f"{minute} {hour} * {month} {dow}", options).get_description(
        DescriptionTypeEnum.DAYOFWEEK)
    if day_of_month and day_of_month in text:
        at = text.index(day_of_month) + len(day_of_month)
        return text[:at] + day_of_week + text[at:]
    return text + day_of_week


def _options() -> Options:
    """English, 24-hour time, 0 = Sunday as in Celery, and no dependence on the process locale.

    cron-descriptor 2 takes these as arguments (and warns when it must guess a locale); 1.x takes none,
    and django-celery-beat still requires 1.x, so both are supported.
    """
    try:
        options = Options(locale_code="en_US", use_24hour_time_format=True)
    except TypeError:
        options = Options()
    options.locale_code = "en_US"
    options.use_24hour_time_format = True
    options.day_of_week_start_index_zero = True
    options.casing_type = CasingTypeEnum.Sentence
    options.verbose = False
    return options


def _abbreviate(field: str) -> str:
    return _NAME.sub(lambda m: m.group(0)[:3].lower(), field)


def _number(value: Any) -> str:
    """12 → "12", 1.5 → "1.5", -0.1278 → "-0.1278": no trailing ".0"."""
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ still must not break the page
        text = f"<{type(value).__name__}>"
    return text[:200]
