"""The companion's fire stamps under the two schedulers that keep their own schedule: a real `celery beat` with
RedBeat's RedBeatScheduler (its `maybe_due` sends through `apply_async`) and with django-celery-beat's
DatabaseScheduler (Celery's `apply_entry`, its own entries). The fires `webui serve` stores carry the entry's
name and the time it was due, and that time is the schedule's: an interval entry is due its period after the
previous run (beat marks the run as it sends the task), and each fire is sent within beat's tick of it. The
first fire is for the slot one period after the entry was saved (both keep that as its last run), which passed
before beat started: its stamp says how late it went, truthfully.

test_agent_beat tests the same with Celery's own scheduler (and the missed verdict); test_beat_controls starts
these two schedulers for the beat controls."""
from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests.integration.test_beat_controls import _child, start_beat
from tests.integration.test_beat_monitoring import entries
from tests.support.processes import LoggedProcess
from tests.support.services import PrivateRedis
from tests.support.store import StoreReader
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ENTRY, PERIOD = "witness-every-2s", 2.0  # the 2 s entry both set-ups define


def stamped_fires(server: Any, store: StoreReader, beat: LoggedProcess, count: int) -> list[dict[str, Any]]:
    """Every fire of ENTRY beat sent (at least `count`, then beat is stopped), as stored, oldest first, each
    with its task's stamp."""
    wait_for(lambda: (e := entries(server).get(ENTRY)) and len(e["fires"]) >= count,
             timeout=45, interval=0.5, message=f"{count} fires of {ENTRY} seen")
    beat.stop()
    sent = beat.log_text().count(f"Sending due task {ENTRY} ")

    def all_stored() -> list[dict[str, Any]] | None:
        rows = store.rows("SELECT f.task_uuid, f.at, f.due FROM beat_fire f JOIN beat_entry e "
                          "ON e.id = f.entry_id WHERE e.name = ? ORDER BY f.at", (ENTRY,))
        return rows if len(rows) == sent else None
    rows = wait_for(all_stored, timeout=15, interval=0.5, message=f"the {sent} fires beat logged, stored")
    entry = entries(server)[ENTRY]
    assert {f["task_uuid"] for f in entry["fires"]} == {r["task_uuid"] for r in rows}, (rows, entry["fires"])
    for row in rows:
        row["stamp"] = ((store.task(row["task_uuid"]) or {}).get("detail") or {}).get("beat")
    for fire in entry["fires"]:  # the API's view of the same fires: due and lateness from the stamp
        assert fire["failed"] is None and fire["lateness"] == pytest.approx(fire["at"] - fire["due"])
    return rows


def assert_due_as_scheduled(rows: list[dict[str, Any]], saved: tuple[float, float]) -> None:
    assert all(r["stamp"] and r["stamp"]["entry"] == ENTRY for r in rows), rows
    assert all(r["due"] is not None and r["due"] == pytest.approx(r["stamp"]["due"]) for r in rows), rows
    first, rest = rows[0], rows[1:]
    assert saved[0] + PERIOD - 0.05 <= first["due"] <= saved[1] + PERIOD + 0.05, (saved, first)
    after_previous = [b["due"] - a["at"] for a, b in zip(rows, rest, strict=False)]
    assert after_previous and all(PERIOD - 0.3 <= gap <= PERIOD + 0.05 for gap in after_previous), rows
    assert all(0 <= r["at"] - r["due"] < 1.5 for r in rest), rows  # sent when due, by beat's 1 s loop
    print(f"{len(rows)} fires: due {min(after_previous):.3f}..{max(after_previous):.3f} s after the previous "
          f"fire, sent {min(r['at'] - r['due'] for r in rest):.3f}..{max(r['at'] - r['due'] for r in rest):.3f} s "
          f"after due (the first {first['at'] - first['due']:.3f} s: due before beat started)")


def watch_and_check(run_webui, worker, database_url: str, source_args: list[str], beat_app: str,
                    env: dict[str, str], tmp_path, store: StoreReader, saved: tuple[float, float]) -> None:
    """`webui serve` watching the schedule source, a real `celery beat` of `beat_app`: its first fires are
    stored stamped with their entry and a due time that follows the schedule."""
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval", "0.1",
                       "--no-enable-events", "--beat-interval", "1", *source_args, env=env)
    server.wait_http("/healthcheck", 200, timeout=30)
    beat = start_beat(beat_app, env, tmp_path / "beat.log")
    try:
        assert_due_as_scheduled(stamped_fires(server, store, beat, 4), saved)
    finally:
        beat.stop()
        print(beat.log_tail())


def test_redbeat_fires_are_stamped_with_their_entry_and_due_time(
        worker, database_url, run_webui, tmp_path, redis_db, private_redis: PrivateRedis, store: StoreReader) -> None:
    from celery import Celery
    from celery.schedules import schedule
    from redbeat import RedBeatSchedulerEntry

    token = f"token-{uuid.uuid4().hex[:8]}"
    prefix = f"stamps-{token}:"
    env = {"WEBUI_TEST_BROKER": worker.broker_url, "WEBUI_TEST_REDBEAT_URL": redis_db,
           "WEBUI_TEST_REDBEAT_PREFIX": prefix, "WEBUI_AGENT_URL": private_redis.url(0)}
    app = Celery("stamps-redbeat", broker=redis_db, set_as_current=False)
    app.conf.update(redbeat_redis_url=redis_db, redbeat_key_prefix=prefix, timezone="UTC")
    before = time.time()
    RedBeatSchedulerEntry(ENTRY, "tests.celeryapp.echo", schedule(PERIOD), args=[ENTRY, token], app=app).save()
    saved = (before, time.time())
    watch_and_check(run_webui, worker, database_url, ["--beat-redbeat-url", redis_db, "--beat-redbeat-prefix", prefix],
                    "tests.beatapp_redbeat", env, tmp_path, store, saved)


def test_django_celery_beat_fires_are_stamped_with_their_entry_and_due_time(
        worker, database_url, run_webui, tmp_path, private_redis: PrivateRedis, store: StoreReader) -> None:
    token = f"token-{uuid.uuid4().hex[:8]}"
    beat_db = f"sqlite:///{tmp_path / 'django-beat.sqlite3'}"
    before = time.time()
    _child("fill", beat_db, token)  # ctl-every-4s and witness-every-2s, never run
    saved = (before, time.time())
    env = {"WEBUI_TEST_BROKER": worker.broker_url, "WEBUI_TEST_DJANGO_DB": beat_db,
           "WEBUI_AGENT_URL": private_redis.url(0)}
    watch_and_check(run_webui, worker, database_url, ["--beat-django-database", beat_db], "tests.beatapp_django",
                    env, tmp_path, store, saved)
