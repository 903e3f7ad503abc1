"""The worker companion (webui.agent) end to end: a real prefork worker with it installed, real Redis, a real
collector reading its stream. Task events are OFF on the main worker: everything the store knows comes from the
companion's records."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from tests.support.collector import running_collector
from tests.support.processes import CeleryWorker
from tests.support.services import PrivateRedis, start_private_redis
from tests.support.store import StoreReader
from tests.support.waiting import wait_for

STREAM = "webui:agent"


@pytest.fixture(scope="module")
def broker() -> Iterator[PrivateRedis]:
    with start_private_redis() as server:
        yield server


@pytest.fixture(scope="module")
def agent_redis() -> Iterator[PrivateRedis]:
    """The companion's own Redis (not the broker's), so stopping it leaves the worker its broker."""
    with start_private_redis() as server:
        yield server


@pytest.fixture(scope="module")
def sender(broker: PrivateRedis) -> Celery:
    """An app of the test's own to send by name: the session's shared app stays pointed at its broker."""
    return Celery("agent-tests", broker=broker.url(1), backend=broker.url(1),
                  broker_transport_options={"visibility_timeout": 3600})


def start_worker(sender: Celery, broker: PrivateRedis, agent_url: str, log_path: Path, name: str,
                 task_events: bool, **env: str) -> CeleryWorker:
    """`env`: more of the companion's settings (WEBUI_AGENT_CAPTURE_LOGS…)."""
    worker = CeleryWorker(sender, broker.url(1), log_path, name=f"{name}-{os.getpid()}@%h", task_events=task_events,
                          env={"WEBUI_AGENT_URL": agent_url, **env})
    return worker.start()


@pytest.fixture(scope="module")
def agent_worker(sender: Celery, broker: PrivateRedis, agent_redis: PrivateRedis,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryWorker]:
    """A prefork worker without task events, with the companion writing to `agent_redis`."""
    worker = start_worker(sender, broker, agent_redis.url(0), tmp_path_factory.mktemp("agent") / "worker.log",
                          "agentworker", task_events=False)
    try:
        yield worker
    finally:
        worker.stop(grace=10)


@pytest.fixture
def fresh_stream(agent_redis: PrivateRedis, agent_worker: CeleryWorker) -> str:
    """The companion's stream emptied of earlier tests' records (and its consumer groups with it)."""
    agent_redis.start()
    client = agent_redis.client()
    client.delete(STREAM)
    client.close()
    return agent_redis.url(0)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'webui.sqlite3'}"


def send(sender: Celery, name: str, *args: object, **options: object) -> str:
    return str(sender.send_task(f"tests.celeryapp.{name}", args, **options).id)


def event_types(store: StoreReader, uuid: str) -> list[str]:
    """In the order they happened: the worker's process and its pool process each publish their own records,
    so a task's `task-started` (pool) can reach the stream before its `task-received` (worker)."""
    return [e["type"] for e in sorted(store.events(uuid), key=lambda e: (e["timestamp"] or 0.0, e["seq"]))]


def wait_states(store: StoreReader, expected: dict[str, str], timeout: float = 30.0) -> None:
    def reached() -> bool:
        return all(store.state(uuid) == state for uuid, state in expected.items())
    try:
        wait_for(reached, timeout=timeout, interval=0.2, message="tasks never reached their states")
    except AssertionError:
        print([(store.state(u), event_types(store, u), (store.task(u) or {}).get("detail"))
               for u in list(expected)[:5]])  # what each had, for the failure report
        raise


def test_it_sees_every_outcome_with_task_events_off(sender: Celery, agent_worker: CeleryWorker, fresh_stream: str,
                                                    sqlite_url: str) -> None:
    with running_collector(sender, sqlite_url, agent_url=fresh_stream, reconcile=False):
        store = StoreReader(sqlite_url)
        ok, bad, retried = send(sender, "add", 2, 3), send(sender, "fail", "boom"), send(sender, "retry_twice")
        revoked = send(sender, "sleep", 30)
        wait_for(lambda: store.state(revoked) == "STARTED", timeout=20, message="the long task never started")
        sender.control.revoke(revoked, terminate=True)
        wait_states(store, {ok: "SUCCESS", bad: "FAILURE", retried: "SUCCESS", revoked: "REVOKED"})

        assert event_types(store, ok) == ["task-received", "task-started", "task-succeeded"]
        assert store.task(ok)["result"] == "5"
        assert store.task(ok)["runtime"] is not None
        assert store.task(ok)["worker"] == agent_worker.hostname
        assert event_types(store, bad) == ["task-received", "task-started", "task-failed"]
        assert "ValueError('boom')" in store.task(bad)["exception"]
        assert "Traceback" in store.task(bad)["traceback"]
        retry_log = event_types(store, retried)
        assert retry_log.count("task-retried") == 2 and retry_log.count("task-started") == 3
        assert retry_log.count("task-sent") == 2  # the re-publishes, from the pool process
        assert store.task(retried)["retries"] == 2
        assert event_types(store, revoked) == ["task-received", "task-started", "task-revoked"]
        assert store.task(revoked)["detail"].get("terminated") is True
        sources = {e["source"] for uuid in (ok, bad, retried, revoked) for e in store.events(uuid)
                   if e["type"] != "task-sent"}
        assert sources == {"agent"}
        # task_send_sent_event makes the pool process send task-sent even without -E: that event and the
        # companion's record of the same publish are one (above: two task-sent, one per retry, not four).
        assert store.rollup_totals()["succeeded"] == 2
        assert store.rollup_totals()["retried"] == 2
        wait_for(lambda: store.rows("SELECT online FROM worker WHERE hostname = ?", (agent_worker.hostname,)),
                 timeout=10, message="the companion's worker-heartbeat never made the worker known")
        store.close()


def final_states(store: StoreReader, uuids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for uuid in uuids:
        state = store.state(uuid) or "unknown"
        counts[state] = counts.get(state, 0) + 1
    return counts


def repeated_reports(store: StoreReader) -> list[dict[str, object]]:
    """First-hand reports stored more than once for one task, type and host: what double counting looks like."""
    return store.rows("SELECT t.uuid, e.type, e.hostname, COUNT(*) AS n FROM task_event e JOIN task t "
                      "ON t.id = e.task_id WHERE e.source IS NULL OR e.source = 'agent' "
                      "GROUP BY t.uuid, e.type, e.hostname HAVING COUNT(*) > 1 ORDER BY t.uuid, e.type")


def test_a_monitor_down_for_30_s_catches_up_on_every_task(sender: Celery, agent_worker: CeleryWorker,
                                                          fresh_stream: str, sqlite_url: str) -> None:
    with running_collector(sender, sqlite_url, agent_url=fresh_stream, reconcile=False):
        pass  # joined the stream's consumer group, then stopped
    stopped = time.monotonic()
    results = [sender.send_task("tests.celeryapp.add", (i, i)) for i in range(200)]
    assert [r.get(timeout=60) for r in results] == [2 * i for i in range(200)]
    time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))

    with running_collector(sender, sqlite_url, agent_url=fresh_stream, reconcile=False):
        store = StoreReader(sqlite_url)
        uuids = [str(r.id) for r in results]
        wait_for(lambda: final_states(store, uuids) == {"SUCCESS": 200}, timeout=30, interval=0.2,
                 message="the 200 tasks run while the monitor was down never all reached SUCCESS")
        assert store.rollup_totals()["succeeded"] == 200
        assert store.rollup_totals()["received"] == 200
        store.close()


def kill_mid_ingest(collector, sender: Celery, store: StoreReader, count: int) -> list[str]:
    """Run `count` tasks while `collector` is paused, so a backlog builds up and is then read at once and
    committed slowly; SIGKILL it once some, not all, are stored. Returns the tasks' ids."""
    collector.kill(signal.SIGSTOP)
    results = [sender.send_task("tests.celeryapp.add", (i, 1)) for i in range(count)]
    assert [r.get(timeout=60) for r in results] == [i + 1 for i in range(count)]
    collector.kill(signal.SIGCONT)
    uuids = [str(r.id) for r in results]
    # One cheap query a poll (the store is the test's own): the whole backlog can commit in a quarter second,
    # and a poll of `count` lookups every 50 ms stepped right over it.
    wait_for(lambda: 0 < store.scalar("SELECT COUNT(*) FROM task WHERE state = 'SUCCESS'") < count, timeout=30,
             interval=0.005, message="ingest never got under way")
    collector.kill(signal.SIGKILL)
    collector.wait()
    return uuids


def test_a_collector_killed_mid_ingest_loses_nothing_and_counts_nothing_twice(
        sender: Celery, agent_worker: CeleryWorker, fresh_stream: str, database_url: str, run_webui,
        agent_redis: PrivateRedis) -> None:
    """On SQLite and PostgreSQL: the re-read's "already stored?" lookup is SQL of each."""
    collect = ("--broker", agent_worker.broker_url, "--database", database_url, "--agent-url", fresh_stream,
               "--batch-interval", "0.2", "--batch-size", "60", "--no-enable-events", "--no-reconcile")
    first = run_webui("collect", *collect)
    store = StoreReader(database_url)
    client = agent_redis.client()
    wait_for(lambda: client.exists(STREAM) and client.xinfo_groups(STREAM), timeout=30,
             message="the collector never joined the stream's consumer group")
    uuids = kill_mid_ingest(first, sender, store, 300)
    pending = client.xpending(STREAM, "webui")["pending"]
    client.close()
    assert pending > 0, "the kill came after every record was acknowledged: nothing tested"

    run_webui("collect", *collect)
    wait_for(lambda: final_states(store, uuids) == {"SUCCESS": 300}, timeout=60, interval=0.2,
             message="tasks missing after the SIGKILLed collector's successor caught up")
    totals = store.rollup_totals()
    assert (totals["received"], totals["started"], totals["succeeded"]) == (300, 300, 300)
    assert repeated_reports(store) == []
    assert store.scalar("SELECT COUNT(*) FROM task WHERE executions != 1") == 0
    store.close()


@pytest.fixture(scope="module")
def events_and_agent_worker(sender: Celery, broker: PrivateRedis, agent_redis: PrivateRedis,
                            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Celery, CeleryWorker]]:
    """A worker sending task events (-E) AND running the companion, on a broker database of its own."""
    both = Celery("agent-tests-both", broker=broker.url(2), backend=broker.url(2),
                  broker_transport_options={"visibility_timeout": 3600})
    worker = CeleryWorker(both, broker.url(2), tmp_path_factory.mktemp("both") / "worker.log",
                          name=f"bothworker-{os.getpid()}@%h", task_events=True,
                          env={"WEBUI_AGENT_URL": agent_redis.url(1)})
    worker.start()
    try:
        yield both, worker
    finally:
        worker.stop(grace=10)


def test_events_and_the_companion_together_count_what_events_alone_count(
        events_and_agent_worker: tuple[Celery, CeleryWorker], agent_redis: PrivateRedis, tmp_path: Path) -> None:
    both, _worker = events_and_agent_worker
    agent_redis.client(1).delete(STREAM)
    paired_url, events_url = (f"sqlite:///{tmp_path / name}" for name in ("paired.sqlite3", "events.sqlite3"))
    with running_collector(both, paired_url, agent_url=agent_redis.url(1), reconcile=False), \
            running_collector(both, events_url, reconcile=False):
        paired, events_only = StoreReader(paired_url), StoreReader(events_url)
        uuids = ([send(both, "add", i, i) for i in range(30)] + [send(both, "fail", f"no {i}") for i in range(10)]
                 + [send(both, "retry_twice") for _ in range(5)])
        expected = {"SUCCESS": 35, "FAILURE": 10}
        for store in (paired, events_only):
            wait_for(lambda store=store: final_states(store, uuids) == expected, timeout=30, interval=0.2,
                     message="tasks never finished")
        # Every record read and committed: the stream's group has nothing pending and nothing unread.
        client = agent_redis.client(1)
        wait_for(lambda: client.xinfo_groups(STREAM)[0]["lag"] == 0
                 and client.xpending(STREAM, "webui")["pending"] == 0, timeout=15, message="records not all read")
        time.sleep(0.5)

        assert paired.rollup_totals() == events_only.rollup_totals()
        assert paired.rollup_totals()["retried"] == 10 and paired.rollup_totals()["succeeded"] == 35
        for uuid in uuids:
            assert sorted(event_types(paired, uuid)) == sorted(event_types(events_only, uuid)), uuid
            assert paired.task(uuid)["executions"] == events_only.task(uuid)["executions"]
        sources = {e["source"] for uuid in uuids for e in paired.events(uuid)}
        assert sources == {None, "agent"}  # both reports arrive; whichever came first of each pair is kept
        assert repeated_reports(paired) == repeated_reports(events_only)  # a retried task's attempts, only
        paired.close()
        events_only.close()


def test_redis_stopped_under_a_running_worker_drops_and_counts_without_failing_a_task(
        sender: Celery, agent_worker: CeleryWorker, fresh_stream: str, agent_redis: PrivateRedis,
        sqlite_url: str) -> None:
    with running_collector(sender, sqlite_url, agent_url=fresh_stream, reconcile=False):
        store = StoreReader(sqlite_url)
        agent_redis.stop()
        long = sender.send_task("tests.celeryapp.sleep", (1.0,))
        results = [sender.send_task("tests.celeryapp.add", (i, 2)) for i in range(20)]
        assert [r.get(timeout=30) for r in results] == [i + 2 for i in range(20)]
        assert long.get(timeout=30) == 1.0
        assert results[0].state == "SUCCESS"
        wait_for(lambda: "records dropped so far" in agent_worker.log_text(), timeout=15,
                 message="the worker never said it dropped records")
        log = agent_worker.log_text()
        assert "webui/agent" not in log  # no traceback through the companion
        assert agent_worker.process is not None and agent_worker.process.alive

        agent_redis.start()
        after = send(sender, "add", 40, 2)
        wait_for(lambda: store.state(after) == "SUCCESS", timeout=45, interval=0.2,
                 message="records sent after Redis came back never arrived")
        assert store.state(str(results[0].id)) is None  # dropped while Redis was down: not invented
        store.close()


def test_the_task_page_shows_progress_and_an_estimated_finish(sender: Celery, agent_worker: CeleryWorker,
                                                             fresh_stream: str, sqlite_url: str, run_webui) -> None:
    server = run_webui("serve", "--broker", agent_worker.broker_url, "--database", sqlite_url, "--agent-url",
                       fresh_stream, "--batch-interval", "0.1", "--no-enable-events", "--no-reconcile")
    server.wait_http("/healthcheck", 200, timeout=30)
    uuid = send(sender, "progress_steps", 4, 1.1)

    def page_showing(text: str) -> str | None:
        response = server.get(f"/task/{uuid}")
        return response.body if response.status == 200 and text in response.body else None

    running = wait_for(lambda: page_showing("Estimated finish"), timeout=20, interval=0.2,
                       message="the running task's page never showed its progress")
    assert '<progress value="25.0" max="100">' in running or '<progress value="50.0" max="100">' in running
    assert "of 4" in running and "step " in running
    done = wait_for(lambda: page_showing("SUCCESS"), timeout=20, interval=0.2, message="the task never finished")
    assert '<progress value="100.0" max="100">' in done and "step 4" in done
    assert "Estimated finish" not in done
