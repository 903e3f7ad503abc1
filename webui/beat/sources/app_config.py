"""The app's own schedule: `app.conf.beat_schedule`, as every scheduler starts from it.

Each item is `name → {task, schedule, args, kwargs, options, relative}` (or a ready ScheduleEntry); the schedule
may be a number of seconds, a timedelta or a Celery schedule object. Beat also adds `celery.backend_cleanup`
(daily at 04:00) when results expire and the backend cannot expire them itself, so that entry is reported too.
Config knows no run history: `last_run_at` is always None.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from numbers import Number
from typing import Any

from celery import Celery
from celery.beat import ScheduleEntry as CeleryEntry
from celery.schedules import crontab, schedule

from webui.beat.entries import SOURCE_APP, ScheduleEntry
from webui.beat.schedule_spec import to_spec
from webui.beat.sources.plain_values import entry_args, entry_kwargs, entry_options

log = logging.getLogger(__name__)

BACKEND_CLEANUP = "celery.backend_cleanup"


def read_app_schedule(app: Celery) -> list[ScheduleEntry]:
    """Every entry of the app's `beat_schedule`, plus the backend cleanup entry beat would add."""
    beat_schedule = dict(app.conf.beat_schedule or {})
    if BACKEND_CLEANUP not in beat_schedule and _beat_adds_backend_cleanup(app):
        beat_schedule[BACKEND_CLEANUP] = {"task": BACKEND_CLEANUP, "schedule": crontab("0", "4", "*"),
                                          "options": {"expires": 12 * 3600}}
    app_timezone = str(app.conf.timezone) if app.conf.timezone else "UTC"
    entries = []
    for name, definition in beat_schedule.items():
        try:
            entries.append(_entry(str(name), definition, app_timezone))
        except Exception as exc:  # noqa: BLE001 - one odd item must not hide the rest of the schedule
            log.warning("beat_schedule entry %r cannot be read: %s: %s", name, type(exc).__name__, exc)
    return sorted(entries, key=lambda entry: entry.name)


def _entry(name: str, definition: Any, app_timezone: str) -> ScheduleEntry:
    if isinstance(definition, CeleryEntry):
        fields: dict[str, Any] = {"task": definition.task, "schedule": definition.schedule,
                                  "args": definition.args, "kwargs": definition.kwargs,
                                  "options": definition.options}
    else:
        fields = dict(definition)
    queue, options = entry_options(fields.get("options"))
    return ScheduleEntry(
        source=SOURCE_APP,
        name=name,
        task=str(fields.get("task") or ""),
        schedule=to_spec(_schedule_object(fields.get("schedule"), bool(fields.get("relative"))), app_timezone),
        args=entry_args(fields.get("args")),
        kwargs=entry_kwargs(fields.get("kwargs")),
        queue=queue,
        options=options,
    )


def _schedule_object(value: Any, relative: bool) -> Any:
    # As celery.schedules.maybe_schedule does, without setting `.app` on the user's own objects.
    if isinstance(value, Number) and not isinstance(value, bool):
        value = timedelta(seconds=float(value))  # type: ignore[arg-type]
    if isinstance(value, timedelta):
        return schedule(value, relative)
    return value


def _beat_adds_backend_cleanup(app: Celery) -> bool:
    """Whether beat's `install_default_entries` adds the cleanup entry (celery-facts §5.1)."""
    if not app.conf.result_expires:
        return False
    from celery.app.backends import by_url

    try:
        # The class only: building the backend itself could connect somewhere.
        backend_class, _url = by_url(app.conf.result_backend, app.loader)
    except Exception as exc:  # noqa: BLE001 - an uninstalled backend: beat could not start either
        log.debug("result backend %r not importable here (%s): no backend cleanup entry", app.conf.result_backend,
                  exc)
        return False
    return not getattr(backend_class, "supports_autoexpire", False)
