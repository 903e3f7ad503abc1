"""Beat schedules as plain data, and the time math on them, done by Celery's own schedule classes.

A *spec* is a JSON-able dict that every schedule source can produce and the store can keep:

    {"kind": "interval", "seconds": 30.0, "relative": False}
    {"kind": "crontab", "minute": "*/15", "hour": "*", "day_of_week": "*", "day_of_month": "*",
     "month_of_year": "*", "timezone": None}          # None: the app's timezone
    {"kind": "solar", "event": "sunset", "latitude": 51.5, "longitude": -0.1}
    {"kind": "clocked", "at": 1796119200.0}           # once, at a UNIX time
    {"kind": "unknown", "repr": "<rrule: …>"}         # a custom class we cannot compute

The math (`next_due`, `previous_slot`, `period`) rebuilds a Celery schedule from the spec and asks it, so
we agree with beat on every corner case (DST, day-of-month *and* day-of-week, month ends) instead of
re-implementing cron. Celery measures "remaining" against `now()`; we inject `now` through `nowfun`, so
every answer is a pure function of its arguments and never of the wall clock.

Specs come from other people's stores (a schedule file, Redis, a Django table) and may be malformed:
these functions answer None rather than raise on a spec they cannot compute.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone, tzinfo
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from celery.exceptions import ImproperlyConfigured
from celery.schedules import BaseSchedule, ParseException, crontab, schedule, solar

INTERVAL = "interval"
CRONTAB = "crontab"
SOLAR = "solar"
CLOCKED = "clocked"
UNKNOWN = "unknown"
KINDS = (INTERVAL, CRONTAB, SOLAR, CLOCKED, UNKNOWN)

CRON_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")

# Everything Celery (or zoneinfo, or ephem) raises for a schedule it cannot build or compute: bad crontab
# fields, an unknown timezone, a time outside datetime's range, ephem missing for a solar schedule.
_CANNOT_COMPUTE: tuple[type[BaseException], ...] = (
    ValueError, TypeError, KeyError, AttributeError, OverflowError, OSError, ArithmeticError, RuntimeError,
    ParseException, ImproperlyConfigured,
)

# How far previous_slot looks back for a crontab's or a sunset's latest slot, widening step by step so a
# frequent schedule costs a few calls: the last step covers a 29 February that must also be a Monday.
_LOOKBACK = (3_600.0, 86_400.0, 8 * 86_400.0, 32 * 86_400.0, 367 * 86_400.0, 9 * 366 * 86_400.0,
             29 * 366 * 86_400.0)
# Crontab slots are whole minutes and solar events hours apart: half a second tells neighbours apart.
_SLOT_PRECISION = 0.5
# period() takes the smallest of this many gaps between consecutive crontab slots.
_PERIOD_GAPS = 3
SOLAR_PERIOD = 86_400.0
_REPR_LIMIT = 300

NextFn = Callable[[float], float]


# ---- Celery objects ⇄ specs -------------------------------------------------------------------------------

def to_spec(sched: Any, app_timezone: str | None = None) -> dict[str, Any]:
    """The spec of a schedule as beat holds it: a Celery schedule, a number of seconds or a timedelta.

    A number or a timedelta is what `beat_schedule` accepts for "every N seconds", so it is an interval.
    A crontab keeps the fields as the user wrote them ("*/15", "mon-fri"), which read better than
    Celery's expanded sets. Its timezone is recorded only when the object carries its own (a subclass such
    as django-celery-beat's TzAwareCrontab sets `tz`); a plain Celery crontab has none of its own in
    Celery 5.7 — it follows the app — so it gets None. A naive datetime (a django-celery-beat clocked
    time) is read in `app_timezone`. Anything else is "unknown" with its repr, so it is still shown.
    """
    if isinstance(sched, bool):  # bool is an int, but True is no schedule
        return _unknown(sched)
    if isinstance(sched, (int, float)):
        return {"kind": INTERVAL, "seconds": float(sched), "relative": False}
    if isinstance(sched, timedelta):
        return {"kind": INTERVAL, "seconds": sched.total_seconds(), "relative": False}
    if isinstance(sched, schedule):
        return {"kind": INTERVAL, "seconds": sched.run_every.total_seconds(), "relative": bool(sched.relative)}
    if isinstance(sched, crontab):
        return _crontab_spec(sched)
    if isinstance(sched, solar):
        return {"kind": SOLAR, "event": str(sched.event), "latitude": float(sched.lat),
                "longitude": float(sched.lon)}
    clocked_time = getattr(sched, "clocked_time", None)  # django_celery_beat.clockedschedule.clocked
    if isinstance(clocked_time, datetime):
        if clocked_time.tzinfo is None:
            clocked_time = clocked_time.replace(tzinfo=_zone(app_timezone) or timezone.utc)
        return {"kind": CLOCKED, "at": clocked_time.timestamp()}
    return _unknown(sched)


def from_spec(spec: dict[str, Any], app_timezone: str | None = None, *,
              nowfun: Callable[[], datetime] | None = None) -> BaseSchedule | None:
    """A Celery schedule object for a spec, or None when Celery has no class for it or cannot build it.

    Clocked and unknown specs give None (a one-off time is not a Celery schedule; django-celery-beat has
    its own class). Solar needs `ephem`, as in beat; without it the answer is None. The object carries
    its timezone (the spec's, else the app's, else UTC) and a `nowfun` (the wall clock unless given), so
    its time math does not reach for `current_app`; `crontab.is_due` still reads the app's config.
    """
    try:
        tz = _spec_zone(spec, app_timezone)
        if tz is None:
            return None
        now = nowfun or _utc_now
        kind = spec.get("kind")
        built: BaseSchedule
        if kind == INTERVAL:
            seconds = float(spec["seconds"])
            if not math.isfinite(seconds):
                return None
            built = schedule(timedelta(seconds=seconds), relative=bool(spec.get("relative")), nowfun=now)
        elif kind == CRONTAB:
            fields = {name: _field_text(spec.get(name, "*")) for name in CRON_FIELDS}
            built = crontab(**fields, nowfun=now)
        elif kind == SOLAR:
            built = solar(str(spec["event"]), float(spec["latitude"]), float(spec["longitude"]), nowfun=now)
        else:
            return None
    except _CANNOT_COMPUTE:
        return None
    # Celery's `tz` and `utc_enabled` are cached properties read from the app; setting them keeps the object
    # independent of whichever app happens to be current.
    built.tz = tz
    built.utc_enabled = True
    return built


def spec_key(spec: dict[str, Any]) -> str:
    """A stable string for a spec, equal for equal schedules, to notice when an entry's schedule changed.

    Keys are sorted and whole numbers are written as floats, so {"seconds": 60} from one source and
    {"seconds": 60.0} from another are the same schedule.
    """
    return json.dumps(_normalise(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# ---- time math -------------------------------------------------------------------------------------------

def next_due(spec: dict[str, Any], last_run_at: float, app_timezone: str | None = None) -> float | None:
    """The UNIX time of the first fire scheduled strictly after `last_run_at`, as beat would compute it.

    Interval: `last_run_at + seconds` (a relative interval is rounded to the clock by Celery). Crontab: the
    next matching minute in the spec's timezone, else the app's, else UTC. Solar: the next event (needs
    ephem). Clocked: its time if still ahead, else None. Unknown, or a spec Celery rejects: None.
    """
    try:
        if not math.isfinite(last_run_at):
            return None
        if spec.get("kind") == CLOCKED:
            at = float(spec["at"])
            return at if at > last_run_at else None
        nxt = _next_fn(spec, app_timezone)
        return None if nxt is None else nxt(float(last_run_at))
    except _CANNOT_COMPUTE:
        return None


def previous_slot(spec: dict[str, Any], t: float, app_timezone: str | None = None) -> float | None:
    """The latest scheduled slot at or before `t`, to measure how late a fire landed.

    The midnight crontab that fired at 00:23 is 23 minutes late against its 00:00 slot. Only crontab and
    solar schedules have slots (and a clocked one its single time); an interval counts from its own last
    run, so it gets None, as do unknown or malformed specs and slots older than about 29 years.

    Celery only computes forwards, so we search backwards: widen a window until its start has a next fire
    at or before `t`, then bisect to the last start that does; about 30 calls, even for a yearly crontab.
    """
    try:
        if not math.isfinite(t):
            return None
        kind = spec.get("kind")
        if kind == CLOCKED:
            at = float(spec["at"])
            return at if at <= t else None
        if kind not in (CRONTAB, SOLAR):
            return None
        nxt = _next_fn(spec, app_timezone)
        if nxt is None:
            return None
        return _last_slot_at_or_before(nxt, float(t))
    except _CANNOT_COMPUTE:
        return None


def period(spec: dict[str, Any], around: float, app_timezone: str | None = None) -> float | None:
    """The usual time in seconds between two fires near `around`: how much lateness a fire can have.

    Interval: its seconds. Crontab: the *smallest* gap among the few slots from the one at or before
    `around` — not the gap after the next fire — because a grace derived from the smallest gap can never
    let a late fire be mistaken for the next slot's ("0 9,17 * * *" has 8 h and 16 h gaps: 8 h; a weekday
    crontab on a Friday still has 1 day, not the weekend's 3). Solar: one day (the event drifts by
    minutes a day), when Celery can build it. Clocked, unknown or malformed: None.
    """
    try:
        kind = spec.get("kind")
        if kind == INTERVAL:
            seconds = float(spec["seconds"])
            return seconds if seconds > 0 and math.isfinite(seconds) else None
        if kind == SOLAR:
            return SOLAR_PERIOD if from_spec(spec, app_timezone) is not None else None
        if kind != CRONTAB or not math.isfinite(around):
            return None
        nxt = _next_fn(spec, app_timezone)
        if nxt is None:
            return None
        slots = [_last_slot_at_or_before(nxt, float(around)) or float(around)]
        for _ in range(_PERIOD_GAPS):
            slots.append(nxt(slots[-1]))
        return min(later - earlier for earlier, later in pairwise(slots))
    except _CANNOT_COMPUTE:
        return None


# ---- helpers ---------------------------------------------------------------------------------------------

def _next_fn(spec: dict[str, Any], app_timezone: str | None) -> NextFn | None:
    """A function UNIX time → next fire, built once so a search does not re-parse the crontab each step."""
    kind = spec.get("kind")
    if kind == INTERVAL:
        seconds = float(spec["seconds"])
        if not (seconds > 0 and math.isfinite(seconds)):
            return None  # beat would fire at every tick: there is no "next" to wait for
        if not spec.get("relative"):
            return lambda last: last + seconds
    tz = _spec_zone(spec, app_timezone)
    clock = _FixedClock()
    sched = from_spec(spec, app_timezone, nowfun=clock)
    if sched is None or tz is None:
        return None

    def nxt(last: float) -> float:
        # Pin "now" to last_run_at: Celery returns next - now, so next = now + remaining, whatever the time.
        clock.at = datetime.fromtimestamp(last, timezone.utc)
        remaining = sched.remaining_estimate(datetime.fromtimestamp(last, tz))
        return (clock.at + remaining).timestamp()

    return nxt


def _utc_now() -> datetime:
    """The default `nowfun`: a module function, so a rebuilt schedule still pickles as beat's do."""
    return datetime.now(timezone.utc)


class _FixedClock:
    """A `nowfun` that returns whatever time we set, so Celery's "remaining" has a known origin."""

    def __init__(self) -> None:
        self.at = datetime(1970, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.at


def _last_slot_at_or_before(nxt: NextFn, t: float) -> float | None:
    """The latest slot ≤ t: the first fire after any start in [slot before it, it) is that slot."""
    for back in _LOOKBACK:
        lo = t - back
        if nxt(lo) <= t:
            break
    else:
        return None
    hi = t  # nxt(t) > t always: the invariant is nxt(lo) <= t < nxt(hi)
    while hi - lo > _SLOT_PRECISION:
        mid = (lo + hi) / 2
        if nxt(mid) <= t:
            lo = mid
        else:
            hi = mid
    return nxt(lo)


def _crontab_spec(cron: crontab) -> dict[str, Any]:
    spec: dict[str, Any] = {"kind": CRONTAB}
    for name in CRON_FIELDS:
        spec[name] = _field_text(getattr(cron, f"_orig_{name}", "*"))
    # Only a subclass that sets its own `tz` (TzAwareCrontab) has a timezone of its own; on a plain crontab
    # a `tz` in the instance dict is just the app's timezone cached by Celery's cached_property.
    own_tz = vars(cron).get("tz") if type(cron) is not crontab else None
    spec["timezone"] = _tz_name(own_tz) if own_tz is not None else None
    return spec


def _field_text(value: Any) -> str:
    """A crontab field as text: Celery also takes an int or a collection of ints (`minute=[0, 30]`)."""
    if value is None:
        return "*"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Iterable):
        return ",".join(str(v) for v in sorted(value))
    return str(value)


def _tz_name(tz: Any) -> str | None:
    if isinstance(tz, str):
        return tz
    for attr in ("key", "zone"):  # zoneinfo, pytz
        name = getattr(tz, attr, None)
        if isinstance(name, str):
            return name
    if isinstance(tz, tzinfo):
        return tz.tzname(None) or str(tz)
    return None


def _zone(name: str | None) -> tzinfo | None:
    """A zoneinfo timezone, UTC for None, or None when the name is unknown."""
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, TypeError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return None


def _spec_zone(spec: dict[str, Any], app_timezone: str | None) -> tzinfo | None:
    """The timezone a spec's slots are counted in: the crontab's own, else the app's, else UTC."""
    own = spec.get("timezone") if spec.get("kind") == CRONTAB else None
    return _zone(own or app_timezone)


def _unknown(sched: Any) -> dict[str, Any]:
    try:
        text = repr(sched)
    except Exception:  # a broken __repr__ must not hide the entry
        text = f"<{type(sched).__name__}>"
    return {"kind": UNKNOWN, "repr": text[:_REPR_LIMIT]}


def _normalise(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value
