"""Beat's `celerybeat-schedule` shelve file as a schedule source, read while a real `celery beat` holds it.

This Python's shelve picks the dbm backend beat writes with (gdbm where Python has it, else dbm.dumb); a file
written by the test through dbm.dumb, the same way beat writes it, covers dbm.dumb everywhere, and the gdbm
lock test runs where Python has gdbm.
"""
from __future__ import annotations

import dbm
import dbm.dumb
import hashlib
import os
import shelve
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import celery
import pytest
from celery import Celery
from celery.beat import ScheduleEntry as CeleryEntry
from celery.schedules import crontab, schedule

from tests.support.processes import LoggedProcess
from tests.support.waiting import wait_for
from webui.beat.entries import ScheduleEntry
from webui.beat.sources import SourceError
from webui.beat.sources.schedule_file import read_schedule_file

APP_MODULE = "beat_file_app"  # written to tmp_path, so this test process cannot import it (nor its classes)

APP_SOURCE = textwrap.dedent('''
    import os
    from datetime import timedelta

    from celery import Celery
    from celery.schedules import crontab, schedule


    class HourlyOfOurOwn(schedule):
        """A schedule class only the user's code has: the monitor cannot unpickle it."""


    app = Celery("beat_file_app", broker=os.environ["BEAT_TEST_BROKER"])
    app.conf.update(timezone="Europe/Paris", broker_connection_retry_on_startup=True)
    app.conf.beat_schedule = {
        "every-second": {"task": "beat_file_app.tick", "schedule": 1.0, "args": (1, 2),
                         "options": {"queue": "beat-test", "priority": 3}},
        "nightly": {"task": "beat_file_app.report", "schedule": crontab(minute=30, hour=2),
                    "kwargs": {"kind": "nightly"}},
        "own-class": {"task": "beat_file_app.tick", "schedule": HourlyOfOurOwn(timedelta(hours=1))},
    }
''')


def by_name(entries: list[ScheduleEntry]) -> dict[str, ScheduleEntry]:
    return {entry.name: entry for entry in entries}


def file_digests(directory: Path) -> dict[str, tuple[int, str]]:
    """Every file's mtime and content hash: what a reader that never writes leaves as it found."""
    return {path.name: (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(directory.iterdir())}


class Beat:
    def __init__(self, tmp_path: Path, broker_url: str) -> None:
        (tmp_path / f"{APP_MODULE}.py").write_text(APP_SOURCE)
        self.directory = tmp_path / "schedule"
        self.directory.mkdir()
        self.schedule_path = str(self.directory / "celerybeat-schedule")
        argv = [str(Path(sys.executable).parent / "celery"), "-A", APP_MODULE, "beat",
                "-s", self.schedule_path, "--max-interval", "1", "-l", "info"]
        python_path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
        self.process = LoggedProcess(argv, tmp_path / "beat.log",
                                     env={"PYTHONPATH": python_path, "BEAT_TEST_BROKER": broker_url})

    def sends(self) -> int:
        return self.process.log_text().count("Sending due task every-second")

    def wait_sends(self, count: int) -> None:
        def sent() -> bool:
            self.process.assert_alive("waiting for beat to send")
            return self.sends() >= count

        wait_for(sent, timeout=15, interval=0.1, message=f"beat never sent every-second {count} times")


@pytest.fixture
def beat(tmp_path: Path, redis_db: str) -> Iterator[Beat]:
    started = Beat(tmp_path, redis_db)
    yield started
    started.process.stop(grace=5)
    print(started.process.log_tail())


def test_it_reads_the_file_while_beat_runs_and_the_runs_once_beat_has_synced(beat: Beat) -> None:
    started = time.time()
    beat.wait_sends(2)

    # Beat holds the file open (gdbm: with its lock) the whole time; we read it regardless.
    running = by_name(read_schedule_file(beat.schedule_path, None))

    assert set(running) == {"every-second", "nightly", "own-class", "celery.backend_cleanup"}
    # Beat syncs every 180 s: while it runs, the file still shows the state at its start. The last_run_at
    # stored for a never-synced run is beat's start time, which is no run at all, so it is not reported.
    assert (running["every-second"].total_run_count, running["every-second"].last_run_at) == (0, None)

    beat.process.terminate()
    assert beat.process.wait(10) == 0
    sends = beat.sends()
    before = file_digests(beat.directory)

    after = by_name(read_schedule_file(beat.schedule_path, None))

    assert file_digests(beat.directory) == before  # read, never written
    every_second = after["every-second"]
    assert every_second.total_run_count == sends >= 2
    assert every_second.last_run_at is not None and started < every_second.last_run_at <= time.time()
    assert every_second.schedule == {"kind": "interval", "seconds": 1.0, "relative": False}
    assert (every_second.source, every_second.task, every_second.args) == ("file", "beat_file_app.tick", [1, 2])
    assert (every_second.queue, every_second.options) == ("beat-test", {"queue": "beat-test", "priority": 3})
    nightly = after["nightly"]
    assert nightly.schedule == {"kind": "crontab", "minute": "30", "hour": "2", "day_of_week": "*",
                                "day_of_month": "*", "month_of_year": "*", "timezone": None}
    assert (nightly.kwargs, nightly.total_run_count, nightly.last_run_at) == ({"kind": "nightly"}, 0, None)
    # The user's own class is not importable here: that entry says what it is, the others are unaffected.
    own = after["own-class"]
    assert own.schedule["kind"] == "unknown"
    assert "beat_file_app.HourlyOfOurOwn" in own.schedule["repr"]
    assert own.task == "beat_file_app.tick"


def test_it_reads_a_dumb_dbm_file_as_beat_writes_it(tmp_path: Path) -> None:
    app = Celery("beat_source_file", broker="memory://", set_as_current=False)
    last = datetime(2026, 3, 1, 8, 30, tzinfo=timezone.utc)
    base = str(tmp_path / "celerybeat-schedule")
    # As PersistentScheduler does: a writeback shelf held open, the entries dict under "entries".
    store = shelve.Shelf(dbm.dumb.open(base, "c"), writeback=True)
    try:
        store["entries"] = {
            "hourly": CeleryEntry(name="hourly", task="reports.hourly", last_run_at=last, total_run_count=7,
                                  schedule=schedule(timedelta(hours=1)), args=(3,), kwargs={"when": last},
                                  options={"queue": "reports"}, app=app),
            "fresh": CeleryEntry(name="fresh", task="reports.fresh", last_run_at=last, total_run_count=0,
                                 schedule=crontab(minute="*/5"), app=app),
        }
        store.update({"__version__": celery.__version__, "tz": "UTC", "utc_enabled": True})
        store.sync()
        assert dbm.whichdb(base) == "dbm.dumb"

        entries = by_name(read_schedule_file(base, "UTC"))
        assert by_name(read_schedule_file(base + ".dat", None)) == entries  # the name of one of its files
    finally:
        store.close()

    hourly = entries["hourly"]
    assert (hourly.total_run_count, hourly.last_run_at) == (7, last.timestamp())
    assert hourly.schedule == {"kind": "interval", "seconds": 3600.0, "relative": False}
    assert (hourly.args, hourly.kwargs, hourly.queue) == ([3], {"when": "2026-03-01T08:30:00+00:00"}, "reports")
    assert (entries["fresh"].total_run_count, entries["fresh"].last_run_at) == (0, None)
    assert entries["fresh"].schedule["minute"] == "*/5"


def test_it_reads_gdbm_without_the_lock_beat_holds(tmp_path: Path, redis_db: str) -> None:
    try:
        import dbm.gnu
    except ImportError:
        # A Python build question, not a missing service: CI's Python has no _gdbm either.
        pytest.skip("this Python has no dbm.gnu (_gdbm): beat writes dbm.dumb files here, tested above")
    beat = Beat(tmp_path, redis_db)
    try:
        beat.wait_sends(1)
        assert dbm.whichdb(beat.schedule_path) == "dbm.gnu"
        with pytest.raises(dbm.gnu.error):
            dbm.gnu.open(beat.schedule_path, "r")  # beat's exclusive lock refuses a locking reader

        entries = by_name(read_schedule_file(beat.schedule_path, None))

        assert entries["every-second"].schedule == {"kind": "interval", "seconds": 1.0, "relative": False}
    finally:
        beat.process.stop(grace=5)


def test_it_says_when_there_is_no_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no beat schedule file at .*celerybeat-schedule"):
        read_schedule_file(str(tmp_path / "celerybeat-schedule"), None)


def test_it_says_when_the_file_is_not_a_schedule(tmp_path: Path) -> None:
    path = tmp_path / "celerybeat-schedule"
    path.write_text("not a database\n")
    with pytest.raises(SourceError, match="not a dbm file"):
        read_schedule_file(str(path), None)
