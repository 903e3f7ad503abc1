"""Flower's HTTP API, as a contract both servers must keep: every check runs once against `webui serve` and
once against a real Flower (the `flower` package, `celery -A tests.celeryapp flower`), both on the session
worker's broker and fed by the same events from the same real worker. A check that passes on Flower and fails
on ours is a shape we got wrong.

Checked: key sets and JSON types of `/api/workers`, `/api/tasks` (and its `limit`, `state`, `taskname` and
`workername` filters), `/api/task/info/<id>`, `/api/task/types`, `/api/queues/length`, `async-apply` then
`/api/task/result/<id>`, `revoke`, `rate-limit` and `timeout` answers, 404 for an unknown task, 401 without
credentials, and `/healthcheck`. Values that legitimately differ (times, Lamport clocks, which tasks each has
seen) are not compared; `test_both_servers_describe_the_same_tasks_alike` compares the two servers' answers
for the same tasks directly.

Where we legitimately differ from Flower, ours is a superset:

- `GET /api/workers` without `workername`: Flower (2.2) caches the task lists (`active`, `scheduled`,
  `reserved`, `revoked`) only for a worker asked about by name; ours always has every inspected key.
- `GET /api/task/types`: ours adds the names the workers registered (Flower: only names seen in events).
- In a task dict, `runtime` of a failed task: ours keeps it, Flower's is null (it reads it from
  `task-succeeded` only). In the `/api/tasks` list, ours leaves `clock` and `client` null (a query per row;
  `/api/task/info` fills them).
- Error bodies: ours are always JSON `{"error": …}`, Flower's are plain text; the status codes are the same.
- `GET /api/task/result/<id>?timeout=N`: Flower reads `state` before it waits, so it may answer a result
  with `"state": "PENDING"`; ours reads the state after the wait. The keys are the same.

Other test sessions share Redis db 1: tasks are found by their ids, the worker by `worker.hostname`, and no
check assumes which worker ran a task. Flower keeps its state in memory, so both servers are up, and Flower
has inspected the worker, before the module sends the tasks it checks. Each server starts once per module.
"""
from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from celery.result import AsyncResult

from tests import celeryapp as tasks
from tests.integration.test_api_flower import FLOWER_TASK_FIELDS, INSPECTED, PASSWORD, FlowerApi
from tests.support.processes import CeleryWorker, LoggedProcess, WebuiProcess, http_get
from tests.support.services import free_port, unavailable
from tests.support.waiting import wait_for
from webui.auth.passwords import hash_password

USER = "alice"  # an admin on ours; Flower's Basic users have no roles
# Inspected on every call; Flower adds the task lists only for a worker asked about by name.
ALWAYS_INSPECTED = {"stats", "active_queues", "registered", "conf", "timestamp"}
TIMES = ("received", "sent", "started", "rejected", "succeeded", "failed", "retried", "revoked", "timestamp")
TASK_TYPES: dict[str, set[str]] = {
    **{field: {"string", "null"} for field in FLOWER_TASK_FIELDS},
    **{field: {"number", "null"} for field in (*TIMES, "runtime", "clock")},
    "uuid": {"string"}, "name": {"string"}, "state": {"string"}, "retries": {"number"}, "children": {"array"},
}
# The same events give the same values here on both servers (times and clocks are left out on purpose).
SAME_VALUES = ("uuid", "name", "state", "args", "kwargs", "result", "exception", "worker", "routing_key", "eta",
               "retries", "root", "root_id", "parent", "parent_id", "children")
OURS_KNOWS_MORE = {"runtime"}  # of a failed task: Flower's is null
LIST_LEAVES_NULL = {"clock", "client"}  # in our /api/tasks only


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


@dataclass
class Sent:
    """The tasks the module sent once both servers were listening, and the worker that ran them."""

    added: str
    failed: str
    scheduled: str  # counted down an hour: RECEIVED, with an eta; revoked at teardown
    worker: str


# -- the two servers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def contract_worker(celery_worker: CeleryWorker) -> CeleryWorker:
    return celery_worker.ensure_alive()


@pytest.fixture(scope="module")
def webui_base(contract_worker: CeleryWorker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("contract-webui")
    process = WebuiProcess(
        "serve",
        ["-A", "tests.celeryapp", "--broker", contract_worker.broker_url,
         "--database", f"sqlite:///{directory / 'webui.sqlite3'}", "--batch-interval", "0.1",
         "--no-enable-events", "--inspect-interval", "5", "--queue-sample-interval", "1",
         "--basic-auth", f"{USER}:{hash_password(PASSWORD)}", "--roles", f"admin=user:{USER}"],
        directory / "webui.log", env={"WEBUI_TEST_BROKER": contract_worker.broker_url})
    try:
        process.wait_http("/healthcheck", 200, timeout=30)
        yield process.url
    finally:
        process.stop(grace=5)
        print(f"---- webui serve (exit {process.poll()}), log {process.log_path}:\n{process.log_tail()}")


@pytest.fixture(scope="module")
def flower_base(contract_worker: CeleryWorker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if importlib.util.find_spec("flower") is None:
        unavailable("flower is not installed: pip install -e '.[test]' to check our API against a real Flower")
    directory = tmp_path_factory.mktemp("contract-flower")
    port = free_port()
    # --enable_events=False: Flower would otherwise tell every worker on db 1 (other tests' too) to send events.
    process = LoggedProcess(
        [sys.executable, "-m", "celery", "-A", "tests.celeryapp", "--broker", contract_worker.broker_url,
         "flower", f"--port={port}", "--address=127.0.0.1", f"--basic-auth={USER}:{PASSWORD}",
         "--enable_events=False"],
        directory / "flower.log", env={"WEBUI_TEST_BROKER": contract_worker.broker_url})
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        process.assert_alive("waiting for Flower's /healthcheck")
        try:
            return http_get(base + "/healthcheck", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_for(healthy, timeout=30, interval=0.1, message=f"Flower never answered; log {process.log_path}")
        yield base
    finally:
        process.stop(grace=5)
        print(f"---- flower (exit {process.poll()}), log {process.log_path}:\n{process.log_tail()}")


@pytest.fixture(scope="module")
def servers(webui_base: str, flower_base: str, contract_worker: CeleryWorker) -> dict[str, FlowerApi]:
    """Both servers, each answering for the worker (Flower: in its inspector cache, which controls need), with
    every reply an inspect always gets: on a busy machine a first refresh can miss the slower replies."""
    apis = {"webui": FlowerApi(webui_base, USER), "flower": FlowerApi(flower_base, USER)}
    for name, api in apis.items():
        def knows_worker(api: FlowerApi = api) -> bool:
            response = api.get("/api/workers", refresh="1")
            return (response.status_code == 200
                    and ALWAYS_INSPECTED <= set(response.json().get(contract_worker.hostname, ())))
        wait_for(knows_worker, timeout=20, interval=0.2, message=f"{name} never showed {contract_worker.hostname}")
    return apis


@pytest.fixture(scope="module")
def sent(servers: dict[str, FlowerApi]) -> Iterator[Sent]:
    """Tasks sent once both servers listen, and seen by both in their final states before any check."""
    added, failed = tasks.add.delay(2, 3), tasks.fail.delay("boom")
    scheduled = tasks.sleep.apply_async((30,), countdown=3600, expires=3660)
    try:
        for api in servers.values():
            for task_id, state in ((added.id, "SUCCESS"), (failed.id, "FAILURE"), (scheduled.id, "RECEIVED")):
                stored(api, task_id, state)
        worker = stored(servers["flower"], added.id, "SUCCESS")["worker"]
        yield Sent(added.id, failed.id, scheduled.id, worker)
    finally:
        tasks.app.control.revoke(scheduled.id)  # or it would hold a pool process of the session worker


@pytest.fixture(scope="module", params=["webui", "flower"])
def api(request: pytest.FixtureRequest, servers: dict[str, FlowerApi], sent: Sent) -> FlowerApi:
    """Each server in turn, as an admin, after the module's tasks are in both."""
    return servers[request.param]


def stored(api: FlowerApi, task_id: str, state: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        response = api.get(f"/api/task/info/{task_id}")
        return response.json() if response.status_code == 200 and response.json()["state"] == state else None
    return wait_for(done, timeout=20, interval=0.1, message=f"{api.base} never had {task_id} as {state}")


def assert_task_shape(task: dict[str, Any], where: str) -> None:
    assert set(task) == FLOWER_TASK_FIELDS, (where, set(task) ^ FLOWER_TASK_FIELDS)
    for field, value in task.items():
        assert json_type(value) in TASK_TYPES[field], (where, field, value)
    assert all(isinstance(child, str) for child in task["children"]), where


# -- the contract ---------------------------------------------------------------------------------------------


def test_workers_have_the_inspected_keys_and_a_status(api, contract_worker):
    everyone = api.get("/api/workers").json()
    mine = everyone[contract_worker.hostname]
    assert ALWAYS_INSPECTED <= set(mine) <= INSPECTED, set(mine)
    named = api.get("/api/workers", workername=contract_worker.hostname, refresh="1").json()
    assert list(named) == [contract_worker.hostname] and set(named[contract_worker.hostname]) == INSPECTED
    for key, value in named[contract_worker.hostname].items():
        expected = {"stats": "object", "conf": "object", "timestamp": "number"}.get(key, "array")
        assert json_type(value) == expected, (key, value)
    assert {"pool", "broker", "total"} <= set(named[contract_worker.hostname]["stats"])
    status = api.get("/api/workers", status="1").json()
    assert status[contract_worker.hostname] is True and all(isinstance(v, bool) for v in status.values())
    assert api.get("/api/workers", workername="nobody@nowhere").status_code == 404


def test_task_info_is_celerys_task_dict(api, sent):
    for task_id in (sent.added, sent.failed, sent.scheduled):
        info = api.get(f"/api/task/info/{task_id}").json()
        assert_task_shape(info, task_id)
    added = api.get(f"/api/task/info/{sent.added}").json()
    assert added["uuid"] == sent.added and added["result"] == "5" and added["args"] == "(2, 3)"
    assert added["root"] == added["root_id"] == sent.added and added["parent"] is None
    assert isinstance(added["clock"], int) and isinstance(added["client"], str)
    assert isinstance(api.get(f"/api/task/info/{sent.scheduled}").json()["eta"], str)


def test_the_task_list_is_an_object_of_task_dicts_that_the_filters_narrow(api, sent):
    listed = api.get("/api/tasks", limit=1000).json()
    assert isinstance(listed, dict) and {sent.added, sent.failed, sent.scheduled} <= set(listed)
    for task_id, task in listed.items():
        assert task["uuid"] == task_id
        assert_task_shape(task, task_id)

    assert len(api.get("/api/tasks", limit=1).json()) == 1
    by_name = api.get("/api/tasks", taskname="tests.celeryapp.add", limit=1000).json()
    assert sent.added in by_name and {t["name"] for t in by_name.values()} == {"tests.celeryapp.add"}
    failures = api.get("/api/tasks", state="FAILURE", limit=1000).json()
    assert sent.failed in failures and {t["state"] for t in failures.values()} == {"FAILURE"}
    assert sent.failed in api.get("/api/tasks", state="All", limit=1000).json()
    on_worker = api.get("/api/tasks", workername=sent.worker, limit=1000).json()
    assert sent.added in on_worker and {t["worker"] for t in on_worker.values()} == {sent.worker}


def test_task_types_and_queue_lengths(api):
    types = api.get("/api/task/types").json()
    assert list(types) == ["task-types"] and types["task-types"] == sorted(types["task-types"])
    assert {"tests.celeryapp.add", "tests.celeryapp.fail"} <= set(types["task-types"])

    def sampled() -> dict[str, Any] | None:  # ours: once the collector's queue sampler has run
        answer = api.get("/api/queues/length").json()
        return answer if any(q["name"] == "celery" for q in answer["active_queues"]) else None
    lengths = wait_for(sampled, timeout=15, interval=0.2, message="no length for the celery queue")
    assert list(lengths) == ["active_queues"]
    for queue in lengths["active_queues"]:
        assert set(queue) == {"name", "messages"} and isinstance(queue["name"], str), queue
        assert isinstance(queue["messages"], int) and not isinstance(queue["messages"], bool), queue


def test_async_apply_then_the_result_from_the_backend(api, sent):
    queued = api.post("/api/task/async-apply/tests.celeryapp.add", json={"args": [1, 2]})
    assert queued.status_code == 200, queued.text
    assert set(queued.json()) == {"task-id", "state"} and isinstance(queued.json()["state"], str)
    task_id = queued.json()["task-id"]
    waited = api.get(f"/api/task/result/{task_id}", timeout=10).json()
    assert set(waited) == {"task-id", "state", "result"} and waited["result"] == 3, waited
    assert isinstance(waited["state"], str)  # Flower's is read before the wait: maybe still PENDING
    assert api.get(f"/api/task/result/{task_id}").json() == {"task-id": task_id, "state": "SUCCESS", "result": 3}
    failure = api.get(f"/api/task/result/{sent.failed}", timeout=10).json()
    assert set(failure) == {"task-id", "state", "result", "traceback"} and failure["state"] == "FAILURE"
    assert isinstance(failure["result"], str) and "boom" in failure["traceback"]
    assert api.post("/api/task/async-apply/no.such.task").status_code == 404


def test_revoke_rate_limit_and_timeout_answer_a_message(api, contract_worker):
    job = tasks.sleep.apply_async((30,), countdown=3600, expires=3660)
    try:
        revoked = api.post(f"/api/task/revoke/{job.id}")
        assert revoked.status_code == 200 and revoked.json() == {"message": f"Revoked '{job.id}'"}
    finally:
        tasks.app.control.revoke(job.id)
    rate = api.post("/api/task/rate-limit/tests.celeryapp.echo",
                    data={"workername": contract_worker.hostname, "ratelimit": "1000/s"})
    assert rate.status_code == 200 and list(rate.json()) == ["message"], rate.text
    assert isinstance(rate.json()["message"], str)
    limits = api.post("/api/task/timeout/tests.celeryapp.echo",
                      data={"workername": contract_worker.hostname, "soft": "100", "hard": "200"})
    assert limits.status_code == 200 and list(limits.json()) == ["message"], limits.text
    assert isinstance(limits.json()["message"], str)
    for path in ("/api/task/rate-limit/no.such.task", "/api/task/timeout/no.such.task"):
        unknown = api.post(path, data={"workername": contract_worker.hostname, "ratelimit": "1/s", "soft": "1"})
        assert unknown.status_code == 404, (path, unknown.text)


def test_unknown_tasks_missing_credentials_and_the_healthcheck(api):
    assert api.get(f"/api/task/info/{uuid.uuid4()}").status_code == 404
    anonymous = requests.get(api.base + "/api/tasks", timeout=10)
    assert anonymous.status_code == 401
    health = requests.get(api.base + "/healthcheck", timeout=10)  # no login
    assert health.status_code == 200 and health.text == "OK"


def test_both_servers_describe_the_same_tasks_alike(servers, sent):
    """The same events, the same answers: same keys, same JSON types, same identifying values."""
    ours, flower = servers["webui"], servers["flower"]
    for route in ("info", "list"):
        for task_id in (sent.added, sent.failed, sent.scheduled):
            if route == "info":
                mine, theirs = (s.get(f"/api/task/info/{task_id}").json() for s in (ours, flower))
            else:
                mine, theirs = (s.get("/api/tasks", limit=1000).json()[task_id] for s in (ours, flower))
            assert set(mine) == set(theirs), (route, task_id, set(mine) ^ set(theirs))
            for field in theirs:
                if json_type(mine[field]) == json_type(theirs[field]):
                    continue
                if theirs[field] is None and field in OURS_KNOWS_MORE:
                    continue
                assert route == "list" and mine[field] is None and field in LIST_LEAVES_NULL, \
                    (route, task_id, field, mine[field], theirs[field])
            assert {f: mine[f] for f in SAME_VALUES} == {f: theirs[f] for f in SAME_VALUES}, (route, task_id)

    hostname = sent.worker
    mine, theirs = (s.get("/api/workers", workername=hostname, refresh="1").json()[hostname] for s in servers.values())
    assert set(mine) == set(theirs) == INSPECTED
    assert set(mine["stats"]) == set(theirs["stats"])
    assert [sorted(q) for q in mine["active_queues"]] == [sorted(q) for q in theirs["active_queues"]]
    assert AsyncResult(sent.added, app=tasks.app).get(timeout=10) == 5  # the backend both read from


def test_the_module_runs_a_real_flower(servers):
    """Guard against a silent fallback: the `flower` server is Flower itself (Tornado), not ours twice."""
    assert servers["webui"].base != servers["flower"].base
    assert "TornadoServer" in requests.get(servers["flower"].base + "/healthcheck", timeout=10).headers["Server"]
