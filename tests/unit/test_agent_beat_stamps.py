"""The companion in beat (webui.agent.beat): Celery's own Scheduler sending through the wrapped apply_async, the
records read back from the real Redis stream. A fire is stamped with its entry and due time; a publish that
fails is recorded, makes no task-sent record, and still raises to beat. Outside beat too, a task whose publish
raised leaves no task-sent record behind."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
from celery import Celery
from celery.beat import ScheduleEntry, Scheduler, SchedulingError
from celery.schedules import schedule

import webui.agent
from webui.agent import beat

# A new app takes in every shared task defined so far in this process (Celery's finalize): after the test modules
# that build tests.dupapp's app twice, that is a DuplicateTaskNameWarning about their tasks, not about beat.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")


def records(url: str, stream: str) -> list[dict]:
    client = redis.Redis.from_url(url)
    try:
        return [json.loads(fields[b"r"]) for _, fields in client.xrange(stream)]
    finally:
        client.close()


def fire(broker: str, agent_url: str, stream: str) -> tuple[Scheduler, ScheduleEntry]:
    app = Celery("stamps", broker=broker, set_as_current=False)
    app.conf.update(task_publish_retry=False, broker_connection_retry=False, broker_connection_timeout=1)
    webui.agent.install(app, url=agent_url, stream=stream)
    scheduler = Scheduler(app, lazy=True)
    beat.hook(scheduler, app._webui_agent)
    last_run = datetime.now(timezone.utc) - timedelta(seconds=3)  # due a second ago (a 2 s entry)
    entry = ScheduleEntry(name="every-2s", task="app.job", schedule=schedule(timedelta(seconds=2), app=app),
                          last_run_at=last_run, app=app)
    return scheduler, entry


def test_a_fire_is_stamped_with_its_entry_and_due_time(redis_db: str) -> None:
    scheduler, entry = fire("memory://", redis_db, "stamps-ok")
    expected_due = entry.last_run_at.timestamp() + 2.0
    scheduler.apply_entry(entry, producer=None)
    scheduler.app._webui_agent.flush()
    [sent] = [r for r in records(redis_db, "stamps-ok") if r["type"] == "task-sent"]
    assert sent["name"] == "app.job" and sent["beat_entry"] == "every-2s"
    assert sent["beat_due"] == pytest.approx(expected_due, abs=0.05)
    assert beat.current_stamp() is None  # the stamp lasts only while the entry's task is sent


def test_a_publish_that_fails_is_recorded_and_still_raises(redis_db: str) -> None:
    scheduler, entry = fire("redis://127.0.0.1:1/0", redis_db, "stamps-failed")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(SchedulingError):
        scheduler.apply_async(entry, advance=False)
    assert time.monotonic() - started < 10
    scheduler.app._webui_agent.flush()
    written = records(redis_db, "stamps-failed")
    [failed] = [r for r in written if r["type"] == "beat-publish-failed"]
    assert (failed["beat_entry"], failed["name"]) == ("every-2s", "app.job")
    # The task was never sent: no task-sent record (it would stay PENDING forever). The failure still names the
    # id Celery gave it, the key the collector stores the failed attempt under.
    assert [r for r in written if r["type"] == "task-sent"] == []
    assert isinstance(failed["uuid"], str) and failed["uuid"]
    assert failed["beat_due"] == pytest.approx(entry.last_run_at.timestamp() + 2.0, abs=0.05)
    assert "Error" in failed["exception"] or "refused" in failed["exception"].lower()


def test_a_publish_that_raises_leaves_no_task_sent_record(redis_db: str) -> None:
    app = Celery("publishing", broker="memory://", set_as_current=False)
    webui.agent.install(app, url=redis_db, stream="publish-raised")
    with pytest.raises(Exception, match="serializable"):
        app.send_task("app.job", args=(timezone.utc,))  # a timezone is no JSON: kombu refuses the message
    sent = app.send_task("app.job", args=(1,))
    app._webui_agent.flush()
    written = records(redis_db, "publish-raised")
    assert [(r["type"], r["uuid"]) for r in written] == [("task-sent", sent.id)]
