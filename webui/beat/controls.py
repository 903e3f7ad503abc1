"""Beat controls: run an entry now, pause or resume it, skip its next run.

"Run now" sends the entry's task with its stored arguments and options through the monitored app, as beat's
`apply_async` would (`send_task(task, args, kwargs, **options)`: queue, exchange, routing key, priority,
headers…), so it works for an entry of any source. Pause, resume and skip change what beat itself reads, so
only the schedule sources that beat reads while it runs can take them: django-celery-beat's tables
(webui.beat.sources.django_write) and RedBeat's keys (webui.beat.sources.redbeat_write). The app's
`beat_schedule`, and the schedule file beat writes from it, live in the app's code: there the buttons are
shown disabled with that reason (`unavailable`).

`perform` validates first (a `ControlRefused` with the reason, which callers answer 409), then acts and
returns a `BeatResult`; a broker or source that cannot be written is the result's `error` (callers answer 503).
Auditing is the caller's job, as for the worker controls. After a write the stored entry is updated at once, so
the pages show the change before the beat watcher's next pass reads it back from the source.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from celery import Celery

from webui.beat import schedule_spec
from webui.beat.board import BoardEntry
from webui.beat.entries import SOURCE_DJANGO, SOURCE_REDBEAT
from webui.beat.reading import redbeat_location
from webui.beat.sources import SourceError

RUN, PAUSE, RESUME, SKIP = "run", "pause", "resume", "skip"
ACTIONS = (RUN, PAUSE, RESUME, SKIP)
AUDIT_ACTIONS = {RUN: "beat_run", PAUSE: "beat_pause", RESUME: "beat_resume", SKIP: "beat_skip"}
WRITABLE_SOURCES = (SOURCE_DJANGO, SOURCE_REDBEAT)
IN_CODE = "beat_schedule lives in the app's code: change it there and restart beat"
# Options a stored entry holds as ISO text (webui.beat.sources.plain_values) that apply_async wants as times.
TIME_OPTIONS = ("eta", "expires")
MAX_SKIP_STEPS = 10_000  # slots walked forward from the last known one to the first still ahead


class ControlRefused(Exception):
    """The control can't be done on this entry (its source can't store it, it is already paused…)."""


@dataclass
class BeatResult:
    """What one beat control did, or why it could not."""

    action: str  # one of ACTIONS
    entry: str  # "source:name", the audit log's target
    error: str | None = None  # the broker or the source could not be reached or written
    task_id: str | None = None  # run now: the task sent
    skipped: float | None = None  # skip: the slot counted as done…
    next_run: float | None = None  # …and the one beat runs it at instead

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> dict[str, Any]:
        """As plain data, for the audit log and the JSON API."""
        found = {"task_id": self.task_id, "skipped": self.skipped, "next_run": self.next_run}
        return {"error": self.error, **{key: value for key, value in found.items() if value is not None}}


def unavailable(entry: BoardEntry, action: str, app_timezone: str | None = None) -> str | None:
    """Why `action` can't be done on `entry` now, as a plain sentence for a disabled button; None if it can."""
    row = entry.row
    if row.removed_at is not None:
        return "no longer in its source"
    if action == RUN:
        return None if row.task else "its task name is not known"
    if row.source not in WRITABLE_SOURCES:
        return IN_CODE
    if action == PAUSE and not row.enabled:
        return "already paused"
    if action == RESUME and row.enabled:
        return "not paused"
    if action == SKIP:
        if not row.enabled:
            return "paused: there is no next run to skip"
        if skip_slots(entry, None, app_timezone) is None:
            return "its next run and the one after it cannot be computed from its schedule"
    return None


def perform(app: Celery, settings: Any, entry: BoardEntry, action: str,
            app_timezone: str | None = None) -> BeatResult:
    """Do `action` on `entry` (ControlRefused when `unavailable` says why not)."""
    reason = unavailable(entry, action, app_timezone)
    if reason is not None:
        raise ControlRefused(reason)
    result = BeatResult(action, f"{entry.row.source}:{entry.row.name}")
    if action == RUN:
        return run_now(app, entry, result)
    try:
        if action == SKIP:
            result.skipped, result.next_run = _skip(app, settings, entry, app_timezone)
            entry.row.last_run_at = result.skipped
            if entry.row.source == SOURCE_REDBEAT:  # the zset score: RedBeat's plan, which this changed
                entry.row.next_due_at = result.next_run
        else:
            _set_enabled(app, settings, entry, enabled=action == RESUME)
            entry.row.enabled = action == RESUME
    except SourceError as exc:
        result.error = str(exc)
        return result
    entry.row.save()
    return result


def run_now(app: Celery, entry: BoardEntry, result: BeatResult) -> BeatResult:
    """Send the entry's task now, as beat would; `result.task_id` is the new task's id."""
    try:
        sent = app.send_task(entry.row.task, args=tuple(entry.args), kwargs=entry.kwargs,
                             **send_options(entry.options))
    except Exception as exc:  # noqa: BLE001 - any broker failure becomes the result's error
        result.error = f"broker unreachable: {exc}"
        return result
    result.task_id = sent.id
    return result


def send_options(options: dict[str, Any]) -> dict[str, Any]:
    """The stored options as apply_async takes them: ISO times back to datetimes, the rest as stored."""
    result = dict(options)
    for key in TIME_OPTIONS:
        value = result.get(key)
        if isinstance(value, str):
            try:
                result[key] = datetime.fromisoformat(value)
            except ValueError:
                del result[key]  # not a time after all: beat could not have sent it either
    return result


def skip_slots(entry: BoardEntry, planned: float | None, app_timezone: str | None,
               now: float | None = None) -> tuple[float, float] | None:
    """(the slot to skip, the one after it): the first slot still ahead, counted from `planned` (the scheduler's
    own plan), else the next due time the fires seen give, else the scheduler's last run; None when none of
    them is known or the schedule can't say."""
    now = time.time() if now is None else now
    spec = entry.schedule
    slot = planned if planned is not None and planned > 0 else entry.status.next_due_at
    if slot is None and entry.row.last_run_at is not None:  # no fire seen: the scheduler's own record
        slot = schedule_spec.next_due(spec, entry.row.last_run_at, app_timezone)
    for _ in range(MAX_SKIP_STEPS):
        if slot is None:
            return None
        if slot >= now:
            following = schedule_spec.next_due(spec, slot, app_timezone)
            return (slot, following) if following is not None else None
        slot = schedule_spec.next_due(spec, slot, app_timezone)
    return None


# -- the writes -------------------------------------------------------------------------------------------------

def _set_enabled(app: Celery, settings: Any, entry: BoardEntry, *, enabled: bool) -> None:
    if entry.row.source == SOURCE_DJANGO:
        from webui.beat.sources import django_write

        django_write.set_enabled(_django_url(settings), entry.row.name, enabled)
        return
    from webui.beat.sources import redbeat_write

    _with_redbeat(app, settings, lambda client, prefix: redbeat_write.set_enabled(
        client, prefix, entry.row.name, enabled))


def _skip(app: Celery, settings: Any, entry: BoardEntry, app_timezone: str | None) -> tuple[float, float]:
    name = entry.row.name
    if entry.row.source == SOURCE_DJANGO:
        from webui.beat.sources import django_write

        slots = _slots_or_refuse(entry, None, app_timezone)
        django_write.skip_slot(_django_url(settings), name, *slots)
        return slots

    from webui.beat.sources import redbeat_write

    def skip(client: redis.Redis, prefix: str) -> tuple[float, float]:
        # RedBeat's zset holds the exact time beat plans to send it next: read it now, not as last watched.
        planned = client.zscore(f"{prefix}:schedule", prefix + name)
        slots = _slots_or_refuse(entry, float(planned) if planned is not None else None, app_timezone)
        redbeat_write.skip_slot(client, prefix, name, *slots)
        return slots
    return _with_redbeat(app, settings, skip)


def _slots_or_refuse(entry: BoardEntry, planned: float | None, app_timezone: str | None) -> tuple[float, float]:
    slots = skip_slots(entry, planned, app_timezone)
    if slots is None:
        raise ControlRefused("its next run and the one after it cannot be computed from its schedule")
    return slots


def _django_url(settings: Any) -> str:
    if not settings.beat_django_database:
        raise SourceError("no django-celery-beat database is set (beat_django_database)")
    return str(settings.beat_django_database)


def _with_redbeat(app: Celery, settings: Any, write: Callable[[redis.Redis, str], Any]) -> Any:
    url, prefix = redbeat_location(app, settings)
    if not url:
        raise SourceError("RedBeat's Redis URL is not known (beat_redbeat_url)")
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return write(client, prefix)
    except redis.RedisError as exc:
        raise SourceError(f"cannot reach RedBeat's Redis: {type(exc).__name__}: {exc}") from exc
    finally:
        client.close()

