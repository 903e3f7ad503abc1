"""celery-redbeat's Redis keys as a schedule source: entries written by RedBeat itself, and by a real beat."""
from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import crontab, schedule

from tests.support.processes import LoggedProcess
from tests.support.services import free_port, unavailable
from tests.support.waiting import wait_for
from webui.beat.entries import ScheduleEntry
from webui.beat.sources import SourceError
from webui.beat.sources.redbeat import read_redbeat

try:
    from redbeat import RedBeatSchedulerEntry
    from redbeat.schedules import rrule
except ImportError:  # pragma: no cover - the test extra installs it
    RedBeatSchedulerEntry = rrule = None


@pytest.fixture(autouse=True)
def _needs_redbeat() -> None:
    if RedBeatSchedulerEntry is None:
        unavailable("celery-redbeat is not installed (pip install -e '.[test]')")


def redbeat_app(redis_url: str, prefix: str = "redbeat:") -> Celery:
    app = Celery("beat_source_redbeat", broker=redis_url, set_as_current=False)
    app.conf.update(redbeat_redis_url=redis_url, redbeat_key_prefix=prefix, timezone="UTC")
    return app


def by_name(entries: list[ScheduleEntry]) -> dict[str, ScheduleEntry]:
    return {entry.name: entry for entry in entries}


def snapshot(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key's serialized value: what a reader that never writes leaves as it found."""
    return {key: client.dump(key) for key in sorted(client.scan_iter(count=1000))}


@pytest.fixture
def client(redis_db: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_db)
    yield connection
    connection.close()


RRULE_START = datetime.now(timezone.utc).replace(second=0, microsecond=0)  # recent: dateutil counts from it


def save_entries(app: Celery) -> None:
    """The kinds of entry people create with RedBeat's own API, one of which has run once."""
    def save(name: str, **fields: Any) -> RedBeatSchedulerEntry:
        return RedBeatSchedulerEntry(name, app=app, **fields).save()

    save("every-90s", task="reports.tick", schedule=schedule(timedelta(seconds=90)), args=[1, 2],
         kwargs={"since": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)},
         options={"queue": "fast", "priority": 3})
    save("office-hours", task="reports.check", schedule=crontab(minute="*/15", hour="9-17", day_of_week="mon-fri"))
    save("paused", task="reports.tick", schedule=schedule(timedelta(minutes=5)), enabled=False)
    save("every-5-min-rrule", task="reports.tick",
         schedule=rrule("MINUTELY", interval=5, dtstart=RRULE_START, app=app))
    has_run = save("has-run", task="reports.tick", schedule=schedule(timedelta(hours=1)))
    next(has_run)  # what RedBeat's scheduler does at each run: meta gets last_run_at and total_run_count


@pytest.mark.parametrize("decode_responses", [False, True], ids=["bytes", "str"])
def test_it_reads_what_redbeat_saved(redis_db: str, client: redis.Redis, decode_responses: bool) -> None:
    save_entries(redbeat_app(redis_db))
    reader_client = redis.Redis.from_url(redis_db, decode_responses=decode_responses)
    before = snapshot(client)

    try:
        entries = by_name(read_redbeat(reader_client))
    finally:
        reader_client.close()

    assert snapshot(client) == before  # read, never written
    assert set(entries) == {"every-90s", "office-hours", "paused", "every-5-min-rrule", "has-run"}
    interval = entries["every-90s"]
    assert interval.schedule == {"kind": "interval", "seconds": 90.0, "relative": False}
    assert (interval.source, interval.task, interval.args) == ("redbeat", "reports.tick", [1, 2])
    assert interval.kwargs == {"since": "2026-01-02T03:04:05+00:00"}
    assert (interval.queue, interval.options) == ("fast", {"queue": "fast", "priority": 3})
    # Never run: RedBeat's stored last_run_at is only the entry's creation time, so it is not a run.
    assert (interval.last_run_at, interval.total_run_count) == (None, None)
    assert interval.next_due_at == client.zscore("redbeat::schedule", "redbeat:every-90s")
    assert entries["office-hours"].schedule == {
        "kind": "crontab", "minute": "*/15", "hour": "9-17", "day_of_week": "mon-fri", "day_of_month": "*",
        "month_of_year": "*", "timezone": None}
    assert entries["paused"].enabled is False
    assert entries["office-hours"].enabled is True
    rrule_spec = entries["every-5-min-rrule"].schedule
    assert rrule_spec["kind"] == "unknown"
    assert rrule_spec["repr"].startswith("rrule(freq=MINUTELY, interval=5")
    assert f"dtstart={RRULE_START.isoformat()}" in rrule_spec["repr"]

    has_run = entries["has-run"]
    meta = json.loads(client.hget("redbeat:has-run", "meta"))
    assert has_run.total_run_count == meta["total_run_count"] == 1
    stamp = meta["last_run_at"]
    assert has_run.last_run_at == datetime(stamp["year"], stamp["month"], stamp["day"], stamp["hour"],
                                           stamp["minute"], stamp["second"], stamp["microsecond"],
                                           tzinfo=timezone.utc).timestamp()
    assert has_run.next_due_at == pytest.approx(has_run.last_run_at + 3600, abs=1)


def test_it_reads_the_runs_a_real_redbeat_beat_records(tmp_path: Path, redis_db: str) -> None:
    (tmp_path / "beat_redbeat_app.py").write_text(textwrap.dedent('''
        import os
        from celery import Celery

        app = Celery("beat_redbeat_app", broker=os.environ["BEAT_TEST_BROKER"])
        app.conf.update(redbeat_redis_url=os.environ["BEAT_TEST_BROKER"], broker_connection_retry_on_startup=True,
                        beat_schedule={"every-second": {"task": "beat_redbeat_app.tick", "schedule": 1.0}})
    '''))
    argv = [str(Path(sys.executable).parent / "celery"), "-A", "beat_redbeat_app", "beat",
            "-S", "redbeat.RedBeatScheduler", "--max-interval", "1", "-l", "info"]
    beat = LoggedProcess(argv, tmp_path / "beat.log",
                         env={"PYTHONPATH": str(tmp_path), "BEAT_TEST_BROKER": redis_db})
    reader_client = redis.Redis.from_url(redis_db)
    try:
        def ran_twice() -> ScheduleEntry | None:
            beat.assert_alive("waiting for RedBeat to run every-second twice")
            entry = by_name(read_redbeat(reader_client)).get("every-second")
            return entry if entry is not None and (entry.total_run_count or 0) >= 2 else None

        # RedBeat writes meta at every run: the reader sees runs while beat is still going.
        entry = wait_for(ran_twice, timeout=15, interval=0.2, message="RedBeat's meta never showed two runs")
    finally:
        beat.stop(grace=5)
        reader_client.close()
        print(beat.log_tail())

    assert entry.schedule == {"kind": "interval", "seconds": 1.0, "relative": False}
    assert entry.last_run_at is not None and entry.next_due_at is not None
    assert entry.last_run_at < entry.next_due_at <= entry.last_run_at + 1.5
    assert beat.log_text().count("Sending due task every-second") >= entry.total_run_count


def test_it_lists_hashes_out_of_the_zset_and_skips_what_it_cannot_decode(redis_db: str,
                                                                           client: redis.Redis) -> None:
    save_entries(redbeat_app(redis_db))
    client.zrem("redbeat::schedule", "redbeat:office-hours")  # the hash alone still defines the entry
    client.zadd("redbeat::schedule", {"redbeat:deleted": 1.0})  # a member whose hash is gone: no entry
    client.hset("redbeat:broken", "definition", "{not json")
    client.set("redbeat:a-string", "not a hash")

    entries = by_name(read_redbeat(client))

    assert set(entries) == {"every-90s", "office-hours", "paused", "every-5-min-rrule", "has-run"}
    assert entries["office-hours"].next_due_at is None


def test_it_reads_under_a_custom_prefix_only(redis_db: str, client: redis.Redis) -> None:
    save_entries(redbeat_app(redis_db))
    RedBeatSchedulerEntry("mine", task="mine.tick", schedule=schedule(timedelta(seconds=10)),
                          app=redbeat_app(redis_db, prefix="my*app:")).save()

    mine = read_redbeat(client, prefix="my*app:")

    assert [entry.name for entry in mine] == ["mine"]  # a glob character in the prefix matches only itself
    assert mine[0].next_due_at == client.zscore("my*app::schedule", "my*app:mine")


def test_it_reads_nothing_where_redbeat_never_ran(client: redis.Redis) -> None:
    assert read_redbeat(client) == []


def test_it_says_when_redis_does_not_answer() -> None:
    unreachable = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=None)
    with pytest.raises(SourceError, match="cannot read RedBeat's keys redbeat:\\*"):
        read_redbeat(unreachable)
