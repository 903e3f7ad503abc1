"""Flower's HTTP API, as its scripts use it: paths, parameters, response shapes, roles and errors, against a
real worker and `webui serve` (with `-A tests.celeryapp`, so apply and the result backend work).

Written against a base URL and Basic credentials only (`FlowerApi`), so the same checks could run against a
Flower started for the same broker. Other test sessions share Redis db 1: tasks are found by their ids, the
worker by `worker.hostname`, and no test assumes which worker ran a task.

Personas: alice is an admin, oscar an operator, vic a viewer.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests import celeryapp as tasks
from tests.support.waiting import wait_for
from webui.auth.passwords import hash_password

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PASSWORD = "correct horse battery"
USERS = ",".join(f"{name}:{hash_password(PASSWORD)}" for name in ("alice", "oscar", "vic"))
ROLES = "admin=user:alice,operator=user:oscar"
FLOWER_TASK_FIELDS = {"uuid", "name", "state", "received", "sent", "started", "rejected", "succeeded", "failed",
                      "retried", "revoked", "args", "kwargs", "eta", "expires", "retries", "worker", "result",
                      "exception", "timestamp", "runtime", "traceback", "exchange", "routing_key", "clock",
                      "client", "root", "root_id", "parent", "parent_id", "children"}
INSPECTED = {"stats", "active_queues", "registered", "scheduled", "active", "reserved", "revoked", "conf",
             "timestamp"}


@dataclass
class FlowerApi:
    """A Flower-compatible server at `base`; `as_(user)` calls it with that user's Basic credentials."""

    base: str
    user: str = "vic"

    def as_(self, user: str) -> FlowerApi:
        return FlowerApi(self.base, user)

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.base + path, params=params, auth=(self.user, PASSWORD), timeout=60)

    def post(self, path: str, data: dict[str, Any] | None = None, json: Any = None) -> requests.Response:
        return requests.post(self.base + path, data=data, json=json, auth=(self.user, PASSWORD), timeout=60)


@pytest.fixture
def api(worker, database_url, run_webui) -> FlowerApi:
    server = run_webui("serve", "-A", "tests.celeryapp", "--broker", worker.broker_url, "--database", database_url,
                       "--batch-interval", "0.1", "--no-enable-events", "--inspect-interval", "5",
                       "--basic-auth", USERS, "--roles", ROLES,
                       env={"WEBUI_TEST_BROKER": worker.broker_url})
    server.wait_http("/healthcheck", 200, timeout=30)
    base = os.environ.get("WEBUI_API_CONTRACT_URL", server.url)  # e.g. a Flower with the same users
    return FlowerApi(base)


def stored(api: FlowerApi, task_id: str, state: str = "SUCCESS") -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        response = api.get(f"/api/task/info/{task_id}")
        return response.json() if response.status_code == 200 and response.json()["state"] == state else None
    return wait_for(done, timeout=20, message=f"{task_id} never stored as {state}")


def inspected(api: FlowerApi, hostname: str) -> dict[str, Any]:
    def answered() -> dict[str, Any] | None:
        response = api.get("/api/workers", workername=hostname)
        data = response.json().get(hostname) if response.status_code == 200 else None
        return data if data and INSPECTED <= set(data) else None  # every command answered
    return wait_for(answered, timeout=20, message=f"{hostname} never inspected")


def test_a_finished_task_has_flowers_fields_in_info_and_in_the_ordered_list(api):
    first, second = tasks.add.delay(2, 3), tasks.add.delay(4, 5)
    info = stored(api, second.id)
    stored(api, first.id)
    assert set(info) == FLOWER_TASK_FIELDS
    assert info["uuid"] == second.id and info["name"] == "tests.celeryapp.add" and info["result"] == "9"
    assert info["args"] == "(4, 5)" and info["root_id"] == second.id and isinstance(info["worker"], str)
    assert info["succeeded"] >= info["started"] >= info["received"] and info["children"] == []

    listed = api.get("/api/tasks", taskname="tests.celeryapp.add", state="All", limit=1000).json()
    order = list(listed)
    assert order.index(second.id) < order.index(first.id), "newest first, as Flower"
    assert set(listed[second.id]) == FLOWER_TASK_FIELDS
    assert list(api.get("/api/tasks", taskname="tests.celeryapp.add", limit=1, offset=order.index(first.id))
                .json()) == [first.id]
    ascending = list(api.get("/api/tasks", taskname="tests.celeryapp.add", sort_by="received", limit=1000).json())
    assert ascending.index(first.id) < ascending.index(second.id)
    found = api.get("/api/tasks", search="result:9", taskname="tests.celeryapp.add", state="SUCCESS").json()
    assert second.id in found and first.id not in found
    assert api.get("/api/tasks", received_start="2000-01-01 00:00", limit=5).status_code == 200
    assert api.get("/api/task/types").json()["task-types"].count("tests.celeryapp.add") == 1


def test_bad_parameters_and_unknown_things_are_json_errors(api):
    for params in ({"sort_by": "worker"}, {"received_start": "yesterday"}, {"limit": "many"},
                   {"state": "DONE"}, {"offset": "10000"}):
        response = api.get("/api/tasks", **params)
        assert response.status_code == 400 and response.json()["error"], params
    assert api.get("/api/task/info/no-such-task").status_code == 404
    assert api.get("/api/task/info/no-such-task").json() == {"error": "Unknown task 'no-such-task'"}
    assert api.get("/api/workers", workername="nobody@nowhere").status_code == 404
    assert api.get("/api/no/such/route").json()["error"]
    assert api.post("/api/tasks").status_code == 405
    anonymous = requests.get(api.base + "/api/tasks", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"]


def test_workers_come_from_the_latest_inspection_and_status_from_heartbeats(api, worker):
    mine = inspected(api, worker.hostname)
    assert set(mine) == INSPECTED
    assert mine["stats"]["pool"]["max-concurrency"] >= 2
    assert "tests.celeryapp.add" in " ".join(mine["registered"])
    assert api.get("/api/workers", refresh="1", workername=worker.hostname).status_code == 200
    assert api.get("/api/workers", status="1").json()[worker.hostname] is True
    lengths = api.get("/api/queues/length").json()
    assert all(set(q) == {"name", "messages"} for q in lengths["active_queues"])


def test_apply_waits_for_the_result_and_the_backend_answers_results(api):
    operator = api.as_("oscar")
    applied = operator.post("/api/task/apply/tests.celeryapp.add", json={"args": [20, 22]})
    assert applied.status_code == 200, applied.text
    assert applied.json()["state"] == "SUCCESS" and applied.json()["result"] == 42
    failed = operator.post("/api/task/apply/tests.celeryapp.fail", json={"args": ["boom"]}).json()
    assert failed["state"] == "FAILURE" and "boom" in failed["traceback"]

    sent = operator.post("/api/task/send-task/tests.celeryapp.add", json={"args": [1, 1], "countdown": 0}).json()
    queued = operator.post("/api/task/async-apply/tests.celeryapp.echo", json={"kwargs": {"a": 1}}).json()
    assert set(sent) == {"task-id", "state"} and set(queued) == {"task-id", "state"}
    result = api.get(f"/api/task/result/{sent['task-id']}", timeout=10).json()
    assert result == {"task-id": sent["task-id"], "state": "SUCCESS", "result": 2}
    assert operator.post("/api/task/async-apply/no.such.task").status_code == 404
    assert operator.post("/api/task/send-task/x", json={"serializer": "pickle"}).status_code == 400
    assert operator.post(f"/api/task/abort/{queued['task-id']}").json() == {
        "message": f"Aborted '{queued['task-id']}'"}


def test_viewers_read_operators_control_tasks_admins_control_workers(api, worker):
    inspected(api, worker.hostname)
    job = tasks.sleep.apply_async((30,), countdown=60, expires=120)  # never runs: revoked first
    viewer, operator, admin = api, api.as_("oscar"), api.as_("alice")
    for path in (f"/api/task/revoke/{job.id}", "/api/task/rate-limit/tests.celeryapp.echo",
                 "/api/task/send-task/tests.celeryapp.add"):
        refused = viewer.post(path, data={"ratelimit": "10/s"})
        assert refused.status_code == 403 and "operator" in refused.json()["error"], path
    assert operator.post(f"/api/task/revoke/{job.id}").json() == {"message": f"Revoked '{job.id}'"}
    assert operator.post(f"/api/worker/pool/grow/{worker.hostname}").status_code == 403

    rate = operator.post("/api/task/rate-limit/tests.celeryapp.echo",
                         data={"workername": worker.hostname, "ratelimit": "1000/s"})
    assert rate.status_code == 200 and "rate limit" in rate.json()["message"].lower(), rate.text
    assert operator.post("/api/task/rate-limit/tests.celeryapp.echo",
                         data={"workername": worker.hostname, "ratelimit": "0"}).status_code == 200
    assert operator.post("/api/task/rate-limit/tests.celeryapp.echo", data={"ratelimit": "fast"}).status_code == 400
    limits = operator.post("/api/task/timeout/tests.celeryapp.echo",
                           data={"workername": worker.hostname, "soft": "100", "hard": "200"})
    assert limits.status_code == 200 and limits.json()["message"], limits.text
    assert operator.post("/api/task/timeout/no.such.task", data={"soft": "1"}).status_code == 404

    queue = f"api-contract-{os.getpid()}"
    added = admin.post(f"/api/worker/queue/add-consumer/{worker.hostname}", data={"queue": queue})
    assert added.status_code == 200 and queue in added.json()["message"], added.text
    cancelled = admin.post(f"/api/worker/queue/cancel-consumer/{worker.hostname}", data={"queue": queue})
    assert cancelled.status_code == 200 and cancelled.json()["message"]
    assert admin.post(f"/api/worker/pool/grow/{worker.hostname}", data={"n": "1"}).json() == {
        "message": f"Growing '{worker.hostname}' worker's pool by 1"}
    assert admin.post(f"/api/worker/pool/shrink/{worker.hostname}", data={"n": "1"}).json() == {
        "message": f"Shrinking '{worker.hostname}' worker's pool by 1"}
    # The worker runs without worker_pool_restarts: it refuses, and Flower's 403 carries its reason.
    restart = admin.post(f"/api/worker/pool/restart/{worker.hostname}")
    assert restart.status_code == 403 and "Failed to restart" in restart.json()["error"]
    assert admin.post("/api/worker/shutdown/nobody@nowhere").json() == {"error": "Unknown worker 'nobody@nowhere'"}

    audit = admin.get("/api/v1/audit")
    if audit.status_code == 200:  # our own route: not on a Flower
        actions = [(e["action"], e["result"]) for e in audit.json()["entries"]]
        assert ("add_consumer", "ok") in actions and ("revoke", "ok") in actions
        assert any(action.endswith("revoke") and result == "refused" for action, result in actions)
        added_entry = next(e for e in audit.json()["entries"] if e["action"] == "add_consumer")
        assert worker.hostname in added_entry["detail"]
