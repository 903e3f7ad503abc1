"""The controls against the real session worker and `webui serve`: revoke, terminate, limits, retry, pool,
consumers, shutdown; each confirmed first, then acted on, with the workers' replies shown.

Other test sessions may share Redis db 1 and run their own workers: every worker-targeted control names this
session's worker, and no test assumes which worker ran a task. Controls don't depend on the store's engine:
SQLite only, except retry, which reads a task's stored arguments (both engines).
"""
from __future__ import annotations

import html
import re
import time
import uuid as uuidlib
from typing import Any

import pytest
import requests

from tests import celeryapp as tasks
from tests.integration.test_auth import csrf_token, log_in, serve_with_logins
from tests.support.processes import CeleryWorker
from tests.support.waiting import wait_for
from webui import control
from webui.collector import inspector

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def post(server, path: str, **data: Any) -> requests.Response:
    """A POST as a script on the no-login server (no browser headers: no CSRF token needed)."""
    return requests.post(server.url + path, data=data, timeout=20)


def confirm(server, path: str, expected: str, **data: Any) -> requests.Response:
    """The two steps of a control: the first POST shows `expected` and a confirm form, the second acts."""
    first = post(server, path, **data)
    assert first.status_code == 200, first.text[-800:]
    assert 'id="control-confirm"' in first.text and expected in html.unescape(first.text), first.text[-1500:]
    assert 'id="control-result"' not in first.text, "nothing is done before the confirmation"
    return post(server, path, confirm="1", **data)


def stored(store, task_id: str, *states: str, timeout: float = 20) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        row = store.task(task_id)
        return row if row is not None and row["state"] in states else None
    row = wait_for(reached, timeout=timeout, message=f"task {task_id} never reached {states}")
    assert row is not None
    return row


def replies_of(body: str) -> dict[str, str]:
    """Worker → "ok" / "error" / "silent" from the result table."""
    rows = re.findall(r'<tr class="reply-(\w+)"><td><code>([^<]+)</code>', body)
    return {html.unescape(worker): kind for kind, worker in rows}


@SQLITE_ONLY
def test_a_revoked_queued_task_never_runs(server, store, worker):
    result = tasks.add.apply_async((1, 2), countdown=4)
    stored(store, result.id, "PENDING", "RECEIVED")

    done = confirm(server, "/controls/task/revoke", f"Revoke task {result.id}", task_id=result.id)

    assert done.status_code == 200 and 'data-ok="true"' in done.text
    assert replies_of(done.text).get(worker.hostname) == "ok"
    row = stored(store, result.id, "REVOKED", timeout=20)
    time.sleep(1.0)  # past the countdown: had it run, it would have started by now
    row = store.task(result.id)
    assert row["state"] == "REVOKED" and row["started_at"] is None and row["succeeded_at"] is None
    assert "task-started" not in {e["type"] for e in store.events(result.id)}


@SQLITE_ONLY
def test_a_running_task_is_terminated_with_the_chosen_signal(server, store, worker):
    result = tasks.sleep.delay(30)
    stored(store, result.id, "STARTED")
    page = server.get(f"/task/{result.id}").body
    assert 'id="terminate-button"' in page and 'id="revoke-button"' not in page

    done = confirm(server, "/controls/task/revoke", "Send SIGKILL", task_id=result.id, terminate="1",
                   signal="SIGKILL")

    assert done.status_code == 200 and 'data-ok="true"' in done.text
    row = stored(store, result.id, "REVOKED", timeout=15)
    assert row["detail"].get("terminated") is True and row["detail"].get("signum") == 9
    assert row["succeeded_at"] is None


@SQLITE_ONLY
def test_a_finished_task_or_a_bad_signal_is_refused(server, store):
    result = tasks.add.delay(2, 2)
    stored(store, result.id, "SUCCESS")
    assert post(server, "/controls/task/revoke", task_id=result.id).status_code == 409
    assert 'id="revoke-button"' not in server.get(f"/task/{result.id}").body
    bad = post(server, "/controls/task/revoke", task_id=result.id, terminate="1", signal="SIGNOPE")
    assert bad.status_code == 400 and "not a signal name" in html.unescape(bad.text)
    assert post(server, "/controls/task/revoke", task_id="never-seen").status_code == 404


@SQLITE_ONLY
def test_a_rate_limit_and_time_limits_reach_the_worker(server, worker):
    name = "tests.celeryapp.echo"
    done = confirm(server, "/controls/worker/rate-limit", f"Set the rate limit of {name} to 7/m on "
                   f"{worker.hostname}", hostname=worker.hostname, task_name=name, rate="7/m")
    assert replies_of(done.text) == {worker.hostname: "ok"}, "only the named worker is asked"
    assert "lost when the worker restarts" in done.text
    inspect = worker.app.control.inspect(destination=[worker.hostname], timeout=2)
    assert f"{name} [rate_limit=7/m]" in inspect.registered()[worker.hostname]

    confirm(server, "/controls/worker/time-limit", "soft 40 s, hard 50 s", hostname=worker.hostname,
            task_name=name, soft="40", hard="50")
    limits = inspect.registered("soft_time_limit", "time_limit")[worker.hostname]
    assert f"{name} [soft_time_limit=40.0 time_limit=50.0]" in limits
    # The collector's own inspection asks for the limits too, so the worker page can show them.
    registered = inspector.broadcast(worker.app, 2.0, None)["registered"] or {}
    assert dict([control.registered_limits(line) for line in registered[worker.hostname]])[name] == {
        "rate_limit": "7/m", "soft_time_limit": "40.0", "time_limit": "50.0"}

    # Put them back: no limit.
    confirm(server, "/controls/worker/rate-limit", "to 0", hostname=worker.hostname, task_name=name, rate="0")
    confirm(server, "/controls/worker/time-limit", "soft none, hard none", hostname=worker.hostname,
            task_name=name, soft="", hard="")
    assert name in inspect.registered("soft_time_limit", "time_limit")[worker.hostname]

    unknown = confirm(server, "/controls/worker/rate-limit", "nope.task", hostname=worker.hostname,
                      task_name="nope.task", rate="1/s")
    assert replies_of(unknown.text) == {worker.hostname: "error"} and "unknown task" in unknown.text
    bad = post(server, "/controls/worker/rate-limit", hostname=worker.hostname, task_name=name, rate="fast")
    assert bad.status_code == 400 and "is not a rate limit" in html.unescape(bad.text)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_retried_failed_task_runs_again_with_the_same_arguments(server, store):
    message = f"retry me {uuidlib.uuid4()}"
    failed = tasks.fail.delay(message)
    old = stored(store, failed.id, "FAILURE")
    assert 'id="retry-button"' in server.get(f"/task/{failed.id}").body

    done = confirm(server, "/controls/task/retry", "Send tests.celeryapp.fail", task_id=failed.id)

    assert done.status_code == 200
    link = re.search(r'id="new-task">New task: <a href="/task/([^"]+)"', done.text)
    assert link, done.text[-1500:]
    new_id = html.unescape(link.group(1))
    assert new_id != failed.id
    new = stored(store, new_id, "FAILURE")
    assert (new["name"], new["args"], new["kwargs"]) == (old["name"], old["args"], old["kwargs"])
    assert new["parent_id"] == failed.id and new["root_id"] == failed.id
    assert f'href="/task/{failed.id}"' in server.get(f"/task/{new_id}").body, "the new task links back"


@SQLITE_ONLY
def test_retry_is_refused_when_the_stored_arguments_were_cut_short(worker, database_url, run_webui, store):
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval",
                       "0.1", "--no-enable-events", "--max-args-size", "100")
    server.wait_http("/healthcheck", 200, timeout=30)
    assert_retry_refused(server, store, tasks.fail.delay("x" * 500), "size cap (max_args_size)")


@SQLITE_ONLY
def test_retry_is_refused_when_celery_cut_the_arguments_short(server, store):
    # Celery's argsrepr stops at 1024 characters: "('yyyy...',)" is a literal, but not the argument.
    assert_retry_refused(server, store, tasks.fail.delay("y" * 5000), "shortened by Celery itself")


def assert_retry_refused(server, store, failed, reason: str) -> None:
    stored(store, failed.id, "FAILURE")
    page = html.unescape(server.get(f"/task/{failed.id}").body)
    assert re.search(r'id="retry-button"\s+disabled', page) and reason in page, reason
    refused = post(server, "/controls/task/retry", task_id=failed.id, confirm="1")
    assert refused.status_code == 409 and reason in html.unescape(refused.text)


@SQLITE_ONLY
def test_bulk_revoke_counts_first_then_revokes_every_match(server, store, worker):
    marker = f"bulk-{uuidlib.uuid4().hex}"
    queued = [tasks.echo.apply_async((marker, i), countdown=5) for i in range(3)]
    finished = tasks.echo.delay(marker, "done")
    for r in queued:
        stored(store, r.id, "PENDING", "RECEIVED")
    stored(store, finished.id, "SUCCESS")

    done = confirm(server, "/controls/tasks/revoke", "This will revoke 3 unfinished tasks", q=marker)

    assert done.status_code == 200 and replies_of(done.text).get(worker.hostname) == "ok"
    for r in queued:
        assert stored(store, r.id, "REVOKED")["started_at"] is None
    assert store.state(finished.id) == "SUCCESS"
    nothing = post(server, "/controls/tasks/revoke", q=marker)
    assert "nothing to revoke" in nothing.text


@SQLITE_ONLY
def test_bulk_retry_counts_first_and_skips_what_cannot_be_resent(server, store):
    marker = f"bulk-{uuidlib.uuid4().hex}"
    failures = [tasks.fail.delay(f"{marker} {i}") for i in range(2)]
    cut = tasks.fail.delay(marker + "x" * 20000)
    for r in [*failures, cut]:
        stored(store, r.id, "FAILURE")

    done = confirm(server, "/controls/tasks/retry", "This will send 2 failed tasks again", q=marker)

    assert "Sent 2 of 2 again" in done.text and "1 can&#39;t be retried" in done.text
    wait_for(lambda: store.scalar("SELECT COUNT(*) FROM task WHERE parent_id IN (?, ?)",
                                  tuple(r.id for r in failures)) == 2, timeout=20, message="retries never seen")


@SQLITE_ONLY
def test_pool_grow_and_shrink_change_the_workers_processes(server, worker):
    def processes() -> int:
        stats = worker.app.control.inspect(destination=[worker.hostname], timeout=2).stats()
        return len(stats[worker.hostname]["pool"]["processes"])

    before = processes()
    grown = confirm(server, "/controls/worker/pool_grow", f"Add 1 pool process to {worker.hostname}",
                    hostname=worker.hostname, n="1")
    assert replies_of(grown.text) == {worker.hostname: "ok"} and "pool will grow" in grown.text
    wait_for(lambda: processes() == before + 1, timeout=10, message="the pool never grew")
    confirm(server, "/controls/worker/pool_shrink", "Remove 1 pool process", hostname=worker.hostname, n="1")
    wait_for(lambda: processes() == before, timeout=10, message="the pool never shrank back")

    autoscale = confirm(server, "/controls/worker/autoscale", "between 1 and 3", hostname=worker.hostname,
                        min="1", max="3")
    assert replies_of(autoscale.text) == {worker.hostname: "error"} and "Autoscale not enabled" in autoscale.text
    restart = confirm(server, "/controls/worker/pool_restart", "Restart the pool", hostname=worker.hostname)
    assert "Pool restarts not enabled" in restart.text and 'data-ok="false"' in restart.text


@SQLITE_ONLY
def test_add_and_cancel_consumer_show_in_active_queues(server, worker):
    queue = f"ctl-{uuidlib.uuid4().hex[:8]}"

    def consumed() -> list[str]:
        replies = worker.app.control.inspect(destination=[worker.hostname], timeout=2).active_queues()
        return [q["name"] for q in replies[worker.hostname]]

    added = confirm(server, "/controls/worker/add_consumer", f"start consuming from queue {queue}",
                    hostname=worker.hostname, queue=queue)
    assert replies_of(added.text) == {worker.hostname: "ok"}
    wait_for(lambda: queue in consumed(), timeout=10, message="the queue was never consumed")
    confirm(server, "/controls/worker/cancel_consumer", f"stop consuming from queue {queue}",
            hostname=worker.hostname, queue=queue)
    wait_for(lambda: queue not in consumed(), timeout=10, message="the consumer was never cancelled")
    assert "celery" in consumed()


@SQLITE_ONLY
def test_a_silent_worker_is_listed_as_such(server):
    done = confirm(server, "/controls/worker/pool_grow", "nobody@nowhere", hostname="nobody@nowhere", n="1")
    assert replies_of(done.text) == {"nobody@nowhere": "silent"} and 'data-ok="false"' in done.text


@SQLITE_ONLY
def test_shutdown_stops_a_worker_of_its_own(server, worker, tmp_path):
    other = CeleryWorker(worker.app, worker.broker_url, tmp_path / "doomed.log",
                         name=f"doomed-{uuidlib.uuid4().hex[:8]}@%h").start()
    try:
        done = confirm(server, "/controls/worker/shutdown", f"Shut {other.hostname} down",
                       hostname=other.hostname)
        assert done.status_code == 200 and "A worker sends no reply to shutdown" in done.text
        process = other.process
        assert process is not None
        wait_for(lambda: process.poll() is not None, timeout=30, message="the worker never exited")
        assert worker.ping(), "the session worker is untouched"
    finally:
        other.stop(grace=5)


CONTROLS = [
    ("/controls/task/revoke", {"task_id": "x"}, "operator"),
    ("/controls/task/retry", {"task_id": "x"}, "operator"),
    ("/controls/tasks/revoke", {}, "operator"),
    ("/controls/tasks/retry", {}, "operator"),
    ("/controls/worker/rate-limit", {"hostname": "w@h", "task_name": "t", "rate": "1/s"}, "operator"),
    ("/controls/worker/time-limit", {"hostname": "w@h", "task_name": "t", "soft": "1"}, "operator"),
    *[(f"/controls/worker/{op}", {"hostname": "w@h", "n": "1", "queue": "q", "min": "1", "max": "2"}, "admin")
      for op in ("pool_restart", "pool_grow", "pool_shrink", "autoscale", "add_consumer", "cancel_consumer",
                 "shutdown")],
]


@SQLITE_ONLY
def test_every_control_needs_its_role_and_the_csrf_token(worker, database_url, run_webui):
    server = serve_with_logins(run_webui, worker, database_url)
    viewer, operator, admin = log_in(server, "vic"), log_in(server, "oscar"), log_in(server, "alice")
    tokens = {client: csrf_token(client, f"{server.url}/tasks") for client in (viewer, operator, admin)}
    for path, data, role in CONTROLS:
        refused = viewer.post(server.url + path, data={**data, "csrf_token": tokens[viewer]})
        assert refused.status_code == 403 and f"needs the {role} role" in refused.text, path
        by_operator = operator.post(server.url + path, data={**data, "csrf_token": tokens[operator]})
        assert (by_operator.status_code == 403) == (role == "admin"), path
        no_token = admin.post(server.url + path, data=data)
        assert no_token.status_code == 403 and "CSRF token" in no_token.text, path
        allowed = admin.post(server.url + path, data={**data, "csrf_token": tokens[admin]})
        assert allowed.status_code != 403, path  # past the checks: a confirmation, 400 or 404
    assert 'id="bulk-controls"' not in viewer.get(f"{server.url}/tasks").text
    assert 'id="bulk-controls"' in operator.get(f"{server.url}/tasks").text
    audit = admin.get(f"{server.url}/admin/audit").text
    assert "controls.revoke_task" in audit and "needs operator" in audit


@SQLITE_ONLY
def test_read_only_refuses_every_control(worker, database_url, run_webui):
    server = serve_with_logins(run_webui, worker, database_url, "--read-only")
    admin = log_in(server, "alice")
    token = csrf_token(admin, f"{server.url}/tasks")
    assert 'id="bulk-controls"' not in admin.get(f"{server.url}/tasks").text
    for path, data, _role in CONTROLS:
        refused = admin.post(server.url + path, data={**data, "csrf_token": token})
        assert refused.status_code == 403 and "read-only" in refused.text, path
