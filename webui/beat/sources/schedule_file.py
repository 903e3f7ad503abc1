"""The default PersistentScheduler's `celerybeat-schedule` shelve file, read beside a running beat.

Beat keeps the file open for its whole life (celery-facts §5.2). We open it read-only and without a lock: gdbm
with `ru` (beat's exclusive lock would refuse a plain `r`), dbm.dumb (`NAME.dat/.dir/.bak`) and the others with
`r`, and never write. The `entries` key holds one pickled dict `name → celery.beat.ScheduleEntry`; it is
unpickled here, so this reader needs celery importable and trusts the file as much as beat does.

What the file says lags: beat syncs it every 180 s and on exit. A never-run entry's `last_run_at` is beat's
start time, not a run, so it is reported only once `total_run_count` is above 0. A schedule class that cannot
be imported or built here (the user's own, not on our path) becomes an "unknown" spec; the other entries are
unaffected.
"""
from __future__ import annotations

import dbm
import importlib
import io
import logging
import os
import pickle
import time
from collections.abc import Callable
from typing import Any

from celery.beat import ScheduleEntry as CeleryEntry
from celery.schedules import BaseSchedule

from webui.beat.entries import SOURCE_FILE, ScheduleEntry
from webui.beat.schedule_spec import to_spec
from webui.beat.sources import SourceError
from webui.beat.sources.plain_values import entry_args, entry_kwargs, entry_options, unix_time

log = logging.getLogger(__name__)

DBM_SUFFIXES = (".dat", ".dir", ".bak", ".db")
ATTEMPTS = 3  # dbm.dumb moves its index aside to rewrite it: a read can land in between, so it is retried
RETRY_DELAY = 0.1
_OPEN_FLAGS = {"dbm.gnu": "ru"}  # gdbm: `u` opens without the lock beat holds; the rest take no lock for "r"


def read_schedule_file(path: str, app_timezone: str | None) -> list[ScheduleEntry]:
    """The entries in beat's schedule file at `path` (the name given to `beat -s`, with or without a suffix).

    Times kept without a zone are taken to be in `app_timezone`, else in the timezone the file records.
    """
    path = _base_path(path)
    error: Exception | None = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(RETRY_DELAY)
        try:
            stored, stored_tz = _load(path)
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - dbm, pickle and OS errors alike: a torn read, try again
            error = exc
            continue
        return _entries(stored, app_timezone or stored_tz)
    raise SourceError(f"cannot read the beat schedule file {path}: {type(error).__name__}: {error}")


def _base_path(path: str) -> str:
    # `beat -s NAME`: gdbm writes NAME, dbm.dumb NAME.dat/.dir/.bak, ndbm NAME.db; users may name any of those.
    if dbm.whichdb(path):
        return path
    for suffix in DBM_SUFFIXES:
        if path.endswith(suffix) and dbm.whichdb(path[: -len(suffix)]):
            return path[: -len(suffix)]
    return path


def _load(path: str) -> tuple[dict[str, Any], str | None]:
    if not any(os.path.exists(path + suffix) for suffix in ("", *DBM_SUFFIXES)):
        raise SourceError(f"no beat schedule file at {path}: is beat running with `-s {path}` on this host?")
    kind = dbm.whichdb(path)
    if kind is None:
        raise OSError(f"{path} cannot be opened")  # dbm.dumb between moving its index aside and rewriting it
    if not kind:
        raise SourceError(f"{path} is not a dbm file that this Python knows: is it a beat schedule file?")
    try:
        backend = importlib.import_module(kind)
    except ImportError as exc:
        raise SourceError(f"{path} is a {kind} file and this Python cannot open it ({exc}): run the monitor "
                          "with the Python beat uses") from exc
    db = backend.open(path, _OPEN_FLAGS.get(kind, "r"))
    try:
        raw = _get(db, "entries")
        stored_tz = _get(db, "tz")
        entries = _unpickle(raw) if raw is not None else {}
        tz = pickle.loads(stored_tz) if stored_tz is not None else None
    finally:
        db.close()
    if not isinstance(entries, dict):
        raise SourceError(f"{path}: `entries` is a {type(entries).__name__}, not beat's dict of entries")
    return entries, (str(tz) if tz else None)


def _get(db: Any, key: str) -> bytes | None:
    try:
        return bytes(db[key.encode()])
    except KeyError:
        return None


def _entries(stored: dict[str, Any], app_timezone: str | None) -> list[ScheduleEntry]:
    entries = []
    for name, stored_entry in stored.items():
        fields = _entry_fields(stored_entry)
        if fields is None:
            log.warning("beat schedule file: entry %r is a %s, not a schedule entry", name, stored_entry)
            continue
        try:
            entries.append(_entry(str(name), fields, app_timezone))
        except Exception as exc:  # noqa: BLE001 - one odd entry must not hide the others
            log.warning("beat schedule file: entry %r cannot be read: %s: %s", name, type(exc).__name__, exc)
    return sorted(entries, key=lambda entry: entry.name)


def _entry(name: str, fields: dict[str, Any], app_timezone: str | None) -> ScheduleEntry:
    schedule = fields["schedule"]
    if isinstance(schedule, Unresolved):
        log.warning("beat schedule file: entry %r has a schedule this process cannot rebuild (%s)",
                    name, schedule.describe())
        spec = {"kind": "unknown", "repr": schedule.describe()}
    else:
        spec = to_spec(schedule, app_timezone)
    count = fields["total_run_count"]
    count = count if isinstance(count, int) else None
    queue, options = entry_options(fields["options"])
    return ScheduleEntry(
        source=SOURCE_FILE,
        name=name,
        task=str(fields["task"] or ""),
        schedule=spec,
        args=entry_args(fields["args"]),
        kwargs=entry_kwargs(fields["kwargs"]),
        queue=queue,
        options=options,
        # Until an entry has run, beat stores its own start time here (celery-facts §5.2): not a run.
        last_run_at=unix_time(fields["last_run_at"], app_timezone) if count else None,
        total_run_count=count,
    )


ENTRY_FIELDS = ("name", "task", "last_run_at", "total_run_count", "schedule", "args", "kwargs", "options")


def _entry_fields(stored: Any) -> dict[str, Any] | None:
    if isinstance(stored, CeleryEntry):
        return {field: getattr(stored, field, None) for field in ENTRY_FIELDS}
    if isinstance(stored, Unresolved) and len(stored.args) >= len(ENTRY_FIELDS):
        # An entry class of the user's own: ScheduleEntry.__reduce__ passes the fields in this order.
        return dict(zip(ENTRY_FIELDS, stored.args[: len(ENTRY_FIELDS)], strict=True))
    return None


# -- tolerant unpickling ----------------------------------------------------------------------------------


class Unresolved:
    """Stands in for an object whose class cannot be imported, or built, in this process."""

    where = "?"
    problem = ""
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Unresolved:
        self = super().__new__(cls)
        self.args, self.kwargs, self.state = args, kwargs, None
        return self

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def describe(self) -> str:
        shown = ", ".join(_short_repr(arg) for arg in self.args)
        return f"{self.where}({shown})" + (f": {self.problem}" if self.problem else "")


def _unresolved_class(module: str, name: str, problem: str) -> type[Unresolved]:
    return type(name, (Unresolved,), {"where": f"{module}.{name}", "problem": problem})


def _guarded(cls: type, module: str, name: str) -> Callable[..., Any]:
    """`cls` as pickle's REDUCE calls it, or a stand-in when building it fails (solar without ephem…)."""

    def build(*args: Any) -> Any:
        try:
            return cls(*args)
        except Exception as exc:  # noqa: BLE001 - whatever the class raises, the other entries still load
            return _unresolved_class(module, name, f"{type(exc).__name__}: {exc}")(*args)

    return build


class _TolerantUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            found = super().find_class(module, name)
        except (ImportError, AttributeError) as exc:
            return _unresolved_class(module, name, f"{type(exc).__name__}: {exc}")
        # Schedules and entries pickle through their own __reduce__, so REDUCE calls what we return here.
        if (isinstance(found, type) and issubclass(found, (BaseSchedule, CeleryEntry))
                and found.__reduce__ is not object.__reduce__):
            return _guarded(found, module, name)
        return found


def _unpickle(raw: bytes) -> Any:
    return _TolerantUnpickler(io.BytesIO(raw)).load()


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."
