"""The workers list and a worker's page in Chromium: light, dark, a phone, and forgetting an offline worker."""
from __future__ import annotations

import time
import uuid
from urllib.parse import quote

import pytest
from celery import Celery

from tests.browser.conftest import PHONE_VIEWPORT, assert_no_console_problems, screenshot
from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.processes import CeleryWorker
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PODS = {"celery@shop-7d9f8b6c5d-x2x9k": True, "celery@shop-7d9f8b6c5d-qw4zt": False,
        "celery@shop-6c5d7d9f8b-zz2kk": False, "celery@old-batch-host": False}


@pytest.fixture
def worker(redis_db, tmp_path):
    """A real worker of its own on this test's Redis database (other sessions' workers share db 1)."""
    own = CeleryWorker(Celery(broker=redis_db), redis_db, tmp_path / "worker.log",
                       name=f"browser-{uuid.uuid4().hex[:8]}@%h")
    yield own.start()
    own.stop()


@pytest.fixture
def populated(worker, redis_db, database_url, run_webui):
    """The worker with a few tasks, a Deployment's pods (one online, two gone) and a lone offline host."""
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--batch-interval", "0.1",
                       "--no-enable-events", "--inspect-interval", "5")
    server.wait_http("/healthcheck", 200, timeout=30)
    wait_for(lambda: worker.hostname in server.get("/workers").body, timeout=40, message="worker never listed")
    for i in range(3):
        worker.app.send_task("tests.celeryapp.add", (i, i))
    worker.app.send_task("tests.celeryapp.fail", ("<script>alert(1)</script>",))
    for hostname, online in PODS.items():
        with dispatcher(redis_db, hostname=hostname) as d:
            d.send("worker-online", freq=60.0, active=0, processed=12, loadavg=[0.4, 0.3, 0.2], sw_ident="py-celery")
            if hostname.startswith("celery@shop"):
                send_task_lifecycle(d, name="shop.tasks.checkout")
        if not online:
            # In a later batch: the writer applies a batch's worker events before its task events.
            time.sleep(0.5)
            with dispatcher(redis_db, hostname=hostname) as d:
                d.send("worker-offline")
    wait_for(lambda: all((f'value="{h}"' in body) != online  # only offline rows have a forget form
                         for body in [server.get("/workers").body] for h, online in PODS.items()),
             timeout=20, message="the pods never reached /workers, online and offline as sent")
    wait_for(lambda: "badge state-failure" in server.get(f"/worker/{quote(worker.hostname)}").body, timeout=20,
             message="the failed task never reached the worker page")
    wait_for(lambda: "prefork" in server.get(f"/worker/{quote(worker.hostname)}").body, timeout=20,
             message="the worker was never inspected")
    return server


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_the_workers_list_groups_pods_and_forgets_an_offline_worker(page, populated, color_scheme):
    page.goto(f"{populated.url}/workers")
    assert page.locator(".group-name", has_text="celery@shop").first.is_visible()
    offline = page.locator("details.offline")
    assert not offline.evaluate("el => el.open")  # offline workers are out of the way
    offline.locator("summary").click()
    screenshot(page, f"workers-{color_scheme}")
    row = page.locator("details.offline tr", has_text="celery@old-batch-host")
    row.locator("button.forget").click()
    page.wait_for_url("**/workers?forgot=*")
    assert "Forgot celery@old-batch-host" in page.locator(".banner").inner_text()
    assert page.locator("a.worker-name", has_text="celery@old-batch-host").count() == 0
    assert "1 forgotten" in page.locator("h2").first.inner_text()
    assert_no_console_problems(page)


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_a_workers_page_shows_its_last_24_hours_and_recent_tasks(page, populated, worker, color_scheme):
    page.goto(f"{populated.url}/worker/{quote(worker.hostname)}")
    assert page.locator("#last-24h .card-value").first.is_visible()
    assert page.locator("#recent-tasks tbody tr").count() == 4
    assert page.locator("#recent-tasks .badge.state-failure").count() >= 1
    assert page.locator("#recent-tasks script").count() == 0
    screenshot(page, f"worker_detail-{color_scheme}")


def test_an_offline_worker_can_be_forgotten_from_its_page(page, populated):
    page.goto(f"{populated.url}/worker/{quote('celery@shop-6c5d7d9f8b-zz2kk')}")
    screenshot(page, "worker_detail-offline")
    page.locator("button.forget").click()
    page.wait_for_url("**/workers?forgot=*")
    assert page.locator("a.worker-name", has_text="celery@shop-6c5d7d9f8b-zz2kk").count() == 0


def test_the_workers_pages_fit_a_phone(page, populated, worker):
    page.set_viewport_size(PHONE_VIEWPORT)
    page.goto(f"{populated.url}/workers")
    page.locator("details.offline summary").click()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    screenshot(page, "workers-phone")
    page.goto(f"{populated.url}/worker/{quote(worker.hostname)}")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    screenshot(page, "worker_detail-phone")
