"""`webui serve`: the page and /healthcheck, which is 200 only with a writable store and a connected collector."""
from __future__ import annotations

import sys

import psutil
import pytest

from tests import celeryapp as tasks
from tests.support.processes import LoggedProcess, http_get
from tests.support.services import free_port
from tests.support.waiting import wait_for


def test_the_page_counts_tasks_and_workers_and_health_is_ok(worker, database_url, run_webui):
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url,
                       "--batch-interval", "0.1", "--no-enable-events")
    server.wait_http("/healthcheck", 200, timeout=30)
    assert server.get("/healthcheck").body == "OK"
    failed = tasks.fail.delay("for the page")
    wait_for(lambda: failed.id in server.get("/tasks?state=FAILURE").body
             and worker.hostname in server.get("/workers").body,
             timeout=20, message="the pages never showed the failure and the worker")
    page = server.get("/")
    assert page.status == 200 and "Failed" in page.body and "Online" in page.body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_health_is_503_with_the_reason_when_the_broker_is_gone(private_redis, database_url, run_webui):
    server = run_webui("serve", "--broker", private_redis.url(0), "--database", database_url,
                       "--no-enable-events")
    server.wait_http("/healthcheck", 200, timeout=30)
    private_redis.stop()
    response = server.wait_http("/healthcheck", 503, timeout=20)
    assert "not connected to the broker" in response.body
    private_redis.start()
    server.wait_http("/healthcheck", 200, timeout=40)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_health_is_503_when_no_collector_runs(redis_db, database_url, run_webui):
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--no-embedded-collector")
    response = server.wait_http("/healthcheck", 503, timeout=30)
    assert "no collector has run" in response.body


def test_celery_dash_a_webui_collects_with_the_apps_own_broker(worker, database_url, store, tmp_path):
    """`celery -A tests.celeryapp webui collect`, as users type it: the app's broker, no --broker given."""
    log_path = tmp_path / "celery-webui.log"
    process = LoggedProcess([sys.executable, "-m", "celery", "-A", "tests.celeryapp", "webui", "collect",
                             "--database", database_url, "--batch-interval", "0.1", "--no-enable-events"],
                            log_path, env={"WEBUI_TEST_BROKER": worker.broker_url})
    try:
        wait_for(lambda: "subscribed to /1.celeryev/*" in process.log_text() or process.assert_alive("starting"),
                 timeout=30, message="celery -A … webui collect never subscribed to the app's broker")
        result = tasks.add.delay(20, 22)
        # The shared worker may still be busy with an earlier test's tasks: the wait covers its queue too.
        wait_for(lambda: store.state(result.id) == "SUCCESS", timeout=45, message="task not stored")
    finally:
        process.stop(grace=10)
    assert process.poll() == 0, process.log_tail()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_by_default_two_web_processes_serve_beside_the_collector(redis_db, database_url, tmp_path):
    """No --workers: two gunicorn processes (each with its own GIL) and the collector's process."""
    port = free_port()
    process = LoggedProcess([sys.executable, "-m", "webui", "serve", "--broker", redis_db, "--database",
                             database_url, "--address", "127.0.0.1", "--port", str(port), "--no-enable-events"],
                            tmp_path / "serve.log")

    def healthy() -> bool:
        process.assert_alive("starting")
        try:
            return http_get(f"http://127.0.0.1:{port}/healthcheck", 2).status == 200
        except OSError:  # not listening yet
            return False

    try:
        wait_for(healthy, timeout=40, message="webui serve never became healthy")
        children = psutil.Process(process.pid).children()
        collectors = [child for child in children if child.name() == "webui-collector"]
        assert len(collectors) == 1 and len(children) == 3, [child.name() for child in children]
    finally:
        process.stop(grace=10)
