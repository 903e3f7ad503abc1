"""The config doctor: each check from the workers' stored replies, the collector's status and recent tasks."""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from webui.detect import doctor
from webui.detect.findings import DetectContext
from webui.detect.registry import all_detectors
from webui.settings import default_settings
from webui.store import schema
from webui.store.database import bind_models, open_database
from webui.store.models import CollectorStatus, Task, Worker, WorkerInspection

NOW = 1_800_000_000.0
PREFORK = "celery.concurrency.prefork:TaskPool"
GEVENT = "celery.concurrency.gevent:TaskPool"
_ids = itertools.count(1)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    database = open_database(f"sqlite:///{tmp_path / 'doctor.sqlite3'}")
    schema.upgrade(database)
    bind_models(database)
    with database.connection_context():
        yield database
    database.close()


def monitor(**transport_options: Any) -> Celery:
    app = Celery("monitor", broker="redis://127.0.0.1:6379/0", set_as_current=False)
    app.conf.broker_transport_options = transport_options
    return app


def ctx(db: Any, app: Celery | None = None) -> DetectContext:
    return DetectContext(db, NOW, default_settings(), celery_app=app if app is not None else monitor())


def advice(db: Any, app: Celery | None = None) -> dict[str, doctor.Advice]:
    return {a.check: a for a in doctor.advise(ctx(db, app))}


def stats(pool: str = PREFORK, concurrency: int = 4, prefetch: int | None = None, transport: str = "redis",
          **transport_options: Any) -> dict[str, Any]:
    return {"pool": {"implementation": pool, "max-concurrency": concurrency},
            "prefetch_count": prefetch if prefetch is not None else 4 * concurrency,
            "broker": {"transport": transport, "transport_options": transport_options}}


def worker(hostname: str, *, conf: dict[str, Any] | None = None, stats: dict[str, Any] | None = None,
           registered: list[str] | None = None, online: bool = True) -> None:
    """An online worker and its last inspect replies; `conf` lists only non-default settings, as Celery does."""
    Worker.create(hostname=hostname, online=online, first_seen=NOW - 3600, last_seen=NOW - 1)
    data = {k: v for k, v in (("conf", conf), ("stats", stats), ("registered", registered)) if v is not None}
    WorkerInspection.create(hostname=hostname, at=NOW - 10, data=json.dumps(data))


def task(*, received_at: float, sent_at: float | None = None, runtime: float | None = None,
         name: str = "app.job") -> None:
    Task.create(uuid=f"t{next(_ids)}", name=name, state="SUCCESS", received_at=received_at, sent_at=sent_at,
                runtime=runtime, updated_at=received_at)


# -- nothing known yet ----------------------------------------------------------------------------------------

def test_an_empty_store_is_unknown_not_ok(db) -> None:
    found = advice(db)

    assert {check: a.status for check, a in found.items()} == {
        "task_events": "unknown", "task_send_sent_event": "unknown", "task_track_started": "unknown",
        "visibility_timeout": "unknown", "monitor_visibility_timeout": "unknown",
        "prefetch_green_pool": "unknown", "prefetch_zero": "unknown"}
    assert all(a.fix for a in found.values())  # what to change and why is there even before it is needed
    assert doctor.config_doctor(ctx(db), {}) == []


# -- task events --------------------------------------------------------------------------------------------

def test_the_collectors_task_events_warning_is_a_warning(db) -> None:
    CollectorStatus.create(leader="c", started_at=NOW, heartbeat_at=NOW,
                           warning="No task events from workers that are running tasks: w1@h (12 tasks).")
    found = advice(db)["task_events"]
    assert found.status == "warn" and "w1@h (12 tasks)" in found.detail and "-E" in found.fix


def test_task_events_arriving_are_ok(db) -> None:
    Worker.create(hostname="w1@h", online=True, first_seen=NOW, last_seen=NOW, last_task_event_at=NOW - 5)
    assert advice(db)["task_events"].status == "ok"


# -- task_send_sent_event -----------------------------------------------------------------------------------

def test_tasks_received_without_a_sent_event_mean_a_sender_has_it_off(db) -> None:
    for i in range(10):
        task(received_at=NOW - 600 + i, sent_at=NOW - 601 + i if i < 5 else None)

    found = advice(db)["task_send_sent_event"]

    assert found.status == "warn" and found.detail.startswith("5 of the 10 newest tasks workers received")
    assert "task_send_sent_event = True" in found.fix and "invisible" in found.fix


def test_sent_events_on_are_ok_and_a_just_received_task_is_not_judged_yet(db) -> None:
    for i in range(10):
        task(received_at=NOW - 600 + i, sent_at=NOW - 601 + i)
    task(received_at=NOW - 2)  # its task-sent event may still be on its way
    task(received_at=NOW - 3 * 86400)  # too old to say anything about today's senders

    found = advice(db)["task_send_sent_event"]
    assert found.status == "ok" and "10 of the 10" in found.detail


# -- task_track_started -------------------------------------------------------------------------------------

def test_task_track_started_missing_from_conf_is_the_default_off(db) -> None:
    worker("on@h", conf={"task_track_started": True})
    worker("off@h", conf={"worker_prefetch_multiplier": 1})
    worker("old@h", conf={"CELERY_TRACK_STARTED": True})
    worker("offline@h", conf={}, online=False)  # not running: not judged

    found = advice(db)["task_track_started"]
    assert found.status == "warn" and found.detail == "Workers with it off: off@h." and "PENDING" in found.fix


def test_task_track_started_on_everywhere_is_ok(db) -> None:
    worker("w1@h", conf={"task_track_started": True})
    assert advice(db)["task_track_started"].status == "ok"


# -- visibility_timeout -------------------------------------------------------------------------------------

def test_a_visibility_timeout_shorter_than_a_stored_run_is_a_warning(db) -> None:
    worker("w1@h", stats=stats(visibility_timeout=600))
    task(received_at=NOW - 3000, runtime=1800.0, name="app.report")

    found = advice(db, monitor(visibility_timeout=600))["visibility_timeout"]

    assert found.status == "warn"
    assert "10 min (w1@h), shorter than the longest stored run of app.report (30 min)" in found.detail
    assert "visibility_timeout" in found.fix and "twice" in found.fix


def test_a_time_limit_longer_than_the_default_timeout_is_a_warning(db) -> None:
    worker("w1@h", stats=stats(), registered=["app.report [time_limit=7200]", "app.add"])
    found = advice(db)["visibility_timeout"]
    assert found.status == "warn" and "1 h" in found.detail and "app.report time_limit (2 h)" in found.detail


def test_a_long_enough_visibility_timeout_is_ok(db) -> None:
    worker("w1@h", stats=stats(visibility_timeout=43200), conf={"task_time_limit": 3600})
    task(received_at=NOW - 3000, runtime=120.0)
    found = advice(db, monitor(visibility_timeout=43200))["visibility_timeout"]
    assert found.status == "ok" and "12 h" in found.detail


def test_rabbitmq_has_no_visibility_timeout(db) -> None:
    worker("w1@h", stats=stats(transport="amqp"))
    app = Celery("monitor", broker="amqp://guest@127.0.0.1//", set_as_current=False)
    found = advice(db, app)
    assert found["visibility_timeout"].status == "ok" and found["monitor_visibility_timeout"].status == "ok"


def test_a_monitor_with_a_shorter_timeout_than_the_workers_is_a_warning(db) -> None:
    worker("w1@h", stats=stats(visibility_timeout=43200))

    found = advice(db, monitor())["monitor_visibility_timeout"]  # kombu's default, 1 h

    assert found.status == "warn" and found.detail == "The monitor uses 1 h; w1@h use 12 h."
    assert advice(db, monitor(visibility_timeout=43200))["monitor_visibility_timeout"].status == "ok"


# -- prefetch -----------------------------------------------------------------------------------------------

def test_gevent_with_the_default_multiplier_is_a_warning(db) -> None:
    worker("green@h", stats=stats(GEVENT, concurrency=100), conf={})  # default multiplier: 4
    worker("tuned@h", stats=stats(GEVENT, concurrency=100), conf={"worker_prefetch_multiplier": 1})
    worker("prefork@h", stats=stats(), conf={})

    found = advice(db)["prefetch_green_pool"]
    assert found.status == "warn" and found.detail.endswith(": green@h.") and "= 1" in found.fix


def test_without_a_conf_reply_the_multiplier_comes_from_the_prefetch_count(db) -> None:
    worker("green@h", stats=stats(GEVENT, concurrency=100, prefetch=100))
    assert advice(db)["prefetch_green_pool"].status == "ok"
    worker("greedy@h", stats=stats(GEVENT, concurrency=100, prefetch=400))
    assert advice(db)["prefetch_green_pool"].detail.endswith(": greedy@h.")


def test_a_multiplier_of_zero_is_a_warning_unless_prefetch_is_disabled(db) -> None:
    worker("zero@h", stats=stats(), conf={"worker_prefetch_multiplier": 0})
    worker("disabled@h", stats=stats(), conf={"worker_prefetch_multiplier": 0, "worker_disable_prefetch": True})
    worker("default@h", stats=stats(), conf={})

    found = advice(db)["prefetch_zero"]
    assert found.status == "warn" and found.detail == "Workers with it 0: zero@h." and "no limit" in found.fix


# -- the detector -------------------------------------------------------------------------------------------

def test_the_config_doctor_detector_reports_each_warning_once_for_the_cluster(db) -> None:
    worker("w1@h", stats=stats(GEVENT, concurrency=50), conf={"worker_prefetch_multiplier": 0})
    detector = all_detectors()["config_doctor"]

    findings = detector.run(ctx(db), detector.resolve_params({}))

    assert sorted(f.subject for f in findings) == ["prefetch_zero", "task_track_started"]
    assert {f.scope for f in findings} == {"cluster"}
    zero = next(f for f in findings if f.subject == "prefetch_zero")
    assert zero.summary == "worker_prefetch_multiplier is 0 (unlimited prefetch). Workers with it 0: w1@h."
    assert zero.detail["fix"].startswith("Set worker_prefetch_multiplier to 1")
    assert zero.link == "/doctor#advice-prefetch_zero"  # the doctor page, at that check


# -- the companion (webui.agent) ---------------------------------------------------------------------------

def companion_ctx(db: Any, agent_url: str) -> DetectContext:
    return DetectContext(db, NOW, default_settings(agent_url=agent_url), celery_app=monitor())


EVENTS_OFF = "No task events from workers that are running tasks: w1@h (12 tasks)."


def test_events_off_but_the_companion_on_every_worker_is_fine(db, redis_db: str) -> None:
    from webui.agent.presence import Presence

    CollectorStatus.create(leader="c", started_at=NOW, heartbeat_at=NOW, warning=EVENTS_OFF)
    worker("w1@h")
    Presence(redis_db, "w1@h", 2.0).refresh()  # the mark the companion's heartbeat writes
    found = {a.check: a for a in doctor.advise(companion_ctx(db, redis_db))}["task_events"]
    assert (found.status, found.urgent) == ("ok", False) and "w1@h run the companion" in found.detail


def test_neither_task_events_nor_the_companion_is_urgent_and_says_what_to_add(db, redis_db: str) -> None:
    from webui.agent.presence import Presence

    CollectorStatus.create(leader="c", started_at=NOW, heartbeat_at=NOW, warning=EVENTS_OFF)
    worker("w1@h")
    worker("w2@h")
    Presence(redis_db, "other@h", 2.0).refresh()  # a mark, but of no worker online here
    found = {a.check: a for a in doctor.advise(companion_ctx(db, redis_db))}["task_events"]
    assert (found.status, found.urgent) == ("warn", True)
    assert found.title == "Neither task events nor the companion: tasks are not seen"
    assert "-E" in found.fix and "webui.agent.install(app)" in found.fix and "agent_url" in found.fix

    Presence(redis_db, "w1@h", 2.0).refresh()  # one of the two runs it: still a warning, no longer urgent
    found = {a.check: a for a in doctor.advise(companion_ctx(db, redis_db))}["task_events"]
    assert (found.status, found.urgent) == ("warn", False) and "the companion runs on w1@h" in found.detail


def agent_event(hostname: str, source: str | None, received_at: float = NOW - 60) -> None:
    """A task received by `hostname`, its task-received stored from `source` (None: a Celery event)."""
    from webui.store.models import TaskEvent

    row = Task.create(uuid=f"t{next(_ids)}", name="app.job", state="SUCCESS", received_at=received_at,
                      updated_at=received_at)
    TaskEvent.create(task_id=row.id, seq=1, type="task-received", timestamp=received_at, received=received_at,
                     hostname=hostname, source=source)


def test_with_a_rabbitmq_companion_its_records_in_the_store_vouch_for_a_worker(db) -> None:
    """The RabbitMQ transport leaves no running-task mark to read: the workers' recent records say it runs."""
    amqp = "amqp://guest:guest@127.0.0.1:5672//"
    CollectorStatus.create(leader="c", started_at=NOW, heartbeat_at=NOW, warning=EVENTS_OFF)
    worker("w1@h")
    worker("w2@h")
    agent_event("w2@h", None)  # a Celery event, not a companion record
    found = {a.check: a for a in doctor.advise(companion_ctx(db, amqp))}["task_events"]
    assert (found.status, found.urgent) == ("warn", True)
    assert "RabbitMQ queue" in found.fix

    agent_event("w1@h", "agent")
    found = {a.check: a for a in doctor.advise(companion_ctx(db, amqp))}["task_events"]
    assert (found.status, found.urgent) == ("warn", False) and "the companion runs on w1@h" in found.detail

    agent_event("w2@h", "agent")
    found = {a.check: a for a in doctor.advise(companion_ctx(db, amqp))}["task_events"]
    assert (found.status, found.urgent) == ("ok", False) and "w1@h, w2@h run the companion" in found.detail
