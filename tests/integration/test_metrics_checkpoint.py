"""/metrics' checkpoint: the leader sums settled rows once into `task_total`, and every process starts from it.

The totals stay exactly a brute-force count of the stored rows before and after the checkpoint advances, in a
process that began before it and in one that begins after, with advancers racing, through a read-only database
role, and in two real `webui serve` processes across a leader failover and a restart; and a process's first read
no longer reads the settled rows at all.
"""
from __future__ import annotations

import signal
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests.integration.test_metrics import scrape
from tests.support.metrics_count import NOW, as_counted, count_stored, make_rows
from tests.support.store import close_database
from tests.support.waiting import wait_for
from webui.store import metrics_checkpoint
from webui.store.database import bind_models, open_database
from webui.store.metrics_queries import TaskTotalsReader, checkpoint
from webui.store.models import Task, TaskMinute, TaskTotal
from webui.store.schema import upgrade
from webui.views.metrics import CACHE_SECONDS

BOUNDS = (0.01, 0.1, 1.0, 10.0)
DAY = 86_400.0
LATER = NOW + 3 * DAY  # every row settled


def fill(first_id: int = 1, count: int = 400, start: float = NOW - 3 * DAY) -> None:
    """Task rows and, for each, a rollup minute (runtimes of whole quarters: their sums are exact)."""
    rows = make_rows(count, seed=first_id, first_id=first_id, start=start)
    Task.insert_many(rows).execute()
    for row in rows[::3]:
        minute = int(row["updated_at"] // 60) * 60
        TaskMinute.insert(minute=minute, name=row["name"] or "", received=3, succeeded=2, failed=1,
                          runtime_sum=0.75, runtime_count=2, rt_b05=2).on_conflict(
            conflict_target=[TaskMinute.minute, TaskMinute.name],
            update={TaskMinute.received: TaskMinute.received + 3}).execute()


LEGACY = {("app.add", "sent", ""): 5, ("app.add", "wait_sum", ""): 2.5, ("app.add", "wait", "1.0"): 5,
          ("app.mail", "failed", "KeyError"): 2}  # what retention folded into `task_total` before this version


def expected(db, legacy: dict | None = None) -> dict:
    """The brute-force count, with what an old store had folded in (`task_total` now holds the checkpoint)."""
    counted = count_stored(db, BOUNDS)
    for key, value in (legacy or {}).items():
        counted[key] = counted.get(key, 0) + value
    return counted


def test_totals_equal_a_brute_force_count_before_and_after_the_checkpoint_advances(db) -> None:
    # An upgraded store: what retention folded before this version, in `task_total` and at minute 0.
    TaskTotal.insert_many([{"name": name, "metric": "wait_us" if metric == "wait_sum" else metric, "label": label,
                            "value": value * 1_000_000 if metric == "wait_sum" else value}
                           for (name, metric, label), value in LEGACY.items()]).execute()
    TaskMinute.insert(minute=0, name="app.add", received=7, succeeded=7, runtime_sum=1.5, rt_b03=7).execute()
    fill()
    midway = NOW - 3 * DAY + 1500  # some tasks settled, most not; rollups and failures not yet
    truth = expected(db, LEGACY)
    before = TaskTotalsReader(BOUNDS)
    assert checkpoint() is None
    assert as_counted(before.read(midway), BOUNDS) == truth  # no checkpoint yet: every row summed here

    first = metrics_checkpoint.advance(db, BOUNDS, midway)
    assert 1 < first.tasks < 400 and checkpoint() == first
    assert as_counted(TaskTotalsReader(BOUNDS).read(midway), BOUNDS) == truth
    assert as_counted(before.read(midway), BOUNDS) == truth

    fill(first_id=401, count=200, start=NOW - 3 * DAY + 3000)
    truth = expected(db, LEGACY)
    assert as_counted(before.read(midway + 3000), BOUNDS) == truth
    metrics_checkpoint.advance(db, BOUNDS, LATER)
    assert checkpoint().tasks > first.tasks
    assert as_counted(TaskTotalsReader(BOUNDS).read(LATER), BOUNDS) == truth
    assert as_counted(before.read(LATER), BOUNDS) == truth
    assert TaskTotalsReader(BOUNDS).read(LATER) == before.read(LATER)


def test_an_old_stores_folded_totals_count_on_across_the_upgrade(database_url) -> None:
    old = open_database(database_url)
    try:
        upgrade(old, target="0014_queue_sample_at")
        with old.connection_context():  # what retention folded in before this version: seconds of wait
            old.execute_sql("INSERT INTO task_total (name, metric, label, value) VALUES "
                            "('app.add', 'wait_sum', '', 2.5), ('app.add', 'wait', '1.0', 5), "
                            "('app.add', 'sent', '', 5)")
        upgrade(old)
        bind_models(old)
        with old.connection_context():
            assert TaskTotalsReader(BOUNDS).read(LATER).wait == {"app.add": ([0, 0, 5, 0, 0], 2.5)}
            metrics_checkpoint.advance(old, BOUNDS, LATER)
            totals = TaskTotalsReader(BOUNDS).read(LATER)
        assert totals.wait == {"app.add": ([0, 0, 5, 0, 0], 2.5)} and totals.counts["app.add"]["sent"] == 5
    finally:
        close_database(old)


def test_a_first_read_takes_the_checkpoint_and_reads_no_settled_row(db) -> None:
    fill()
    metrics_checkpoint.advance(db, BOUNDS, LATER)
    settled = TaskTotalsReader(BOUNDS).read(LATER)
    covered = checkpoint()
    assert covered is not None

    # Rewrite every row below the checkpoint behind its back: a process that read them would count otherwise.
    Task.update(sent_at=None, exception="Tampered()").where(Task.id < covered.tasks).execute()
    TaskMinute.update(received=TaskMinute.received + 1000).where(TaskMinute.minute < covered.minutes).execute()
    assert TaskTotalsReader(BOUNDS).read(LATER) == settled

    # Rows above it are read: a task received since.
    Task.insert(id=10_000, uuid="newest", name="app.add", state="SUCCESS", sent_at=LATER - 10, received_at=LATER - 9,
                started_at=LATER - 8, updated_at=LATER - 8).execute()
    fresh = TaskTotalsReader(BOUNDS).read(LATER)
    assert fresh.counts["app.add"]["sent"] == settled.counts["app.add"]["sent"] + 1


def test_the_checkpoint_stops_below_a_task_still_waiting_when_a_later_one_arrives_settled(db) -> None:
    fill(count=50)
    now = NOW + 3 * DAY
    Task.insert(id=51, uuid="queued", name="app.add", state="RECEIVED", sent_at=now - 10, received_at=now - 9,
                updated_at=now - 9).execute()  # not started yet
    Task.insert(id=52, uuid="late", name="app.add", state="SUCCESS", sent_at=now - 3600, received_at=now - 3599,
                started_at=now - 3598, updated_at=now - 3598).execute()  # its events came late: settled on arrival
    before = TaskTotalsReader(BOUNDS)
    before.read(now)
    assert metrics_checkpoint.advance(db, BOUNDS, now).tasks == 51

    Task.update(state="STARTED", started_at=now + 20).where(Task.uuid == "queued").execute()  # 30 s of wait
    truth = expected(db)
    metrics_checkpoint.advance(db, BOUNDS, LATER)
    assert as_counted(TaskTotalsReader(BOUNDS).read(LATER), BOUNDS) == truth
    assert as_counted(before.read(LATER), BOUNDS) == truth


def test_advancers_racing_add_each_row_once(db) -> None:
    fill()
    truth = expected(db)
    ready = threading.Barrier(4)
    errors: list[BaseException] = []

    def advance() -> None:
        try:
            with db.connection_context():
                ready.wait()
                metrics_checkpoint.advance(db, BOUNDS, LATER)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=advance) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert as_counted(TaskTotalsReader(BOUNDS).read(LATER), BOUNDS) == truth
    assert metrics_checkpoint.advance(db, BOUNDS, LATER) == checkpoint()  # nothing left to add


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_read_only_database_role_reads_the_totals(db, database_url, postgres_admin) -> None:
    fill()
    truth = expected(db)
    role = f"webui_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
    parts = urlsplit(database_url)
    reader_db = open_database(urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}")))
    try:
        for advance in (False, True):
            if advance:
                metrics_checkpoint.advance(db, BOUNDS, LATER)
            bind_models(reader_db)
            with reader_db.connection_context():
                assert as_counted(TaskTotalsReader(BOUNDS).read(LATER), BOUNDS) == truth
            bind_models(db)
    finally:
        bind_models(db)
        close_database(reader_db)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))  # its grants, here
        with psycopg.connect(postgres_admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# -- real processes ---------------------------------------------------------------------------------------------


def task_series(process) -> dict:
    response = process.get("/metrics", timeout=30)
    assert response.status == 200, response.body[:300]
    return {key: v for key, v in scrape(response.body).items() if key[0].startswith("celery_task_")}


def brute_series(counted: dict) -> dict:
    """The sent and failed series a brute-force count gives."""
    series = {}
    for (name, metric, label), value in counted.items():
        if metric == "sent":
            series[("celery_task_sent_total", frozenset({("name", name)}))] = value
        elif metric == "failed":
            series[("celery_task_failed_total", frozenset({("name", name), ("exception", label)}))] = value
    return series


def sent_and_failed(series: dict) -> dict:
    return {k: v for k, v in series.items() if k[0] in ("celery_task_sent_total", "celery_task_failed_total") and v}


def test_two_processes_agree_with_a_brute_force_count_across_a_failover_and_a_restart(
        database_url, redis_db, run_webui) -> None:
    store = open_database(database_url)
    upgrade(store)
    bind_models(store)
    with store.connection_context():
        fill(start=time.time() - 3 * DAY)  # settled, all of them: only the checkpoint should read them
        truth = brute_series(expected(store))

    def serve():
        process = run_webui("serve", "--broker", redis_db, "--database", database_url, "--batch-interval", "0.1",
                            "--no-enable-events", "--log-level", "info")
        process.wait_http("/healthcheck", 200, timeout=30)
        return process

    def checkpointed() -> bool:
        with store.connection_context():
            return checkpoint() is not None

    try:
        first = serve()
        wait_for(checkpointed, timeout=30, message="the leading collector never advanced the checkpoint")
        second = serve()  # its collector stands by
        a, b = task_series(first), task_series(second)
        scraped = time.monotonic()
        assert a == b and sent_and_failed(a) == truth

        first.kill(signal.SIGKILL)
        wait_for(lambda: "collector leading" in second.log_text(), timeout=15, message="the standby never led")
        with store.connection_context():
            fill(first_id=401, count=100, start=time.time() - 1200)  # new tasks, some of them settled already
            truth = brute_series(expected(store))
        restarted = serve()
        # Each process keeps its rendering CACHE_SECONDS: `second`'s from before the new rows must expire first.
        time.sleep(max(0.0, CACHE_SECONDS - (time.monotonic() - scraped)))
        a, b = task_series(restarted), task_series(second)
        assert a == b and sent_and_failed(a) == truth
    finally:
        close_database(store)  # a failed assertion must not leave it to the garbage collector
