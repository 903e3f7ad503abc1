"""The collector inspects the real worker in the background, and the workers pages show what it answered."""
from __future__ import annotations

import json
import re
import uuid
from urllib.parse import quote

import pytest
from celery import Celery

from tests.support.collector import running_collector
from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.processes import CeleryWorker
from tests.support.waiting import wait_for


def inspection(store, hostname: str) -> dict | None:
    rows = store.rows("SELECT at, data FROM worker_inspection WHERE hostname = ?", (hostname,))
    return json.loads(rows[0]["data"]) if rows and rows[0]["data"] else None


def test_the_collector_stores_the_workers_inspection(worker, database_url, store):
    with running_collector(worker.app, database_url, inspect_interval=5):
        # Each command's reply is merged in as it comes: a slow one (under load) arrives in a later round.
        commands = {"stats", "active_queues", "registered", "active", "reserved", "scheduled", "revoked", "conf"}
        data = wait_for(lambda: (d := inspection(store, worker.hostname)) and commands <= set(d) and d,
                        timeout=30, message="the worker's inspection was never stored whole")

    assert data["stats"]["pool"]["max-concurrency"] == 2
    assert "celery" in [q["name"] for q in data["active_queues"]]
    assert "tests.celeryapp.add" in data["registered"]
    assert not any(h.startswith("celerybeat@") for h in [r["hostname"] for r in store.rows(
        "SELECT hostname FROM worker_inspection")])


def test_the_pages_show_the_worker_its_pool_and_its_registered_tasks(worker, database_url, run_webui):
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url,
                       "--batch-interval", "0.1", "--no-enable-events", "--inspect-interval", "5")
    server.wait_http("/healthcheck", 200, timeout=30)

    def listed() -> bool:
        body = server.get("/workers").body
        return worker.hostname in body and "inspected" in body and "not inspected yet" not in body

    wait_for(listed, timeout=30, message="/workers never showed the inspected worker")
    page = server.get("/workers")
    assert page.status == 200
    assert "online" in page.body and "<td data-label=\"Concurrency\">2</td>" in page.body
    assert "<code class=\"queue\">celery</code>" in page.body

    detail = server.get(f"/worker/{quote(worker.hostname)}")
    assert detail.status == 200
    assert "tests.celeryapp.add" in detail.body and "prefork" in detail.body
    assert "Online and offline" in detail.body

    missing = server.get("/worker/nobody@nowhere")
    assert missing.status == 404 and "nobody@nowhere" in missing.body
    assert server.get("/worker/" + "x" * 300).status == 400


def test_a_hostname_in_the_page_is_escaped(database_url, run_webui, redis_db):
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--no-enable-events")
    server.wait_http("/healthcheck", 200, timeout=30)
    page = server.get("/worker/" + quote("<script>alert(1)</script>@host"))
    assert page.status == 404
    assert "<script>alert(1)</script>" not in page.body and "&lt;script&gt;" in page.body


@pytest.fixture
def own_worker(redis_db, tmp_path):
    """A real worker of its own on this test's Redis database: other test sessions' workers share db 1 and
    would take some of the tasks, and their tasks would reach this test's collector."""
    worker = CeleryWorker(Celery(broker=redis_db), redis_db, tmp_path / "worker.log",
                          name=f"stats-{uuid.uuid4().hex[:8]}@%h")
    yield worker.start()
    worker.stop()


def test_the_worker_page_shows_its_last_24_hours_and_recent_tasks(own_worker, redis_db, database_url, run_webui):
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--batch-interval", "0.1",
                       "--no-enable-events")
    server.wait_http("/healthcheck", 200, timeout=30)
    app = own_worker.app
    wait_for(lambda: f">{own_worker.hostname}</a>" in server.get("/workers").body, timeout=20,
             message="the worker never reached /workers")
    ids = [app.send_task("tests.celeryapp.add", (i, i)).id for i in range(3)]
    ids.append(app.send_task("tests.celeryapp.fail", ("expected failure",)).id)
    page_path = f"/worker/{quote(own_worker.hostname)}"

    def all_finished() -> str | None:
        body = server.get(page_path).body
        return body if body.count("badge state-success") == 3 and body.count("badge state-failure") == 1 else None

    body = wait_for(all_finished, timeout=30, message="the four tasks never all reached the worker page")
    cards = dict(re.findall(r'card-label">([^<]+)</div><div class="card-value">\s*([^<]+?)\s*</div>', body))
    assert cards == {"Processed": "4", "Succeeded": "3", "Failed": "1", "Success rate": "75.0 %",
                     "Average runtime": cards["Average runtime"]}
    assert cards["Average runtime"].endswith(("ms", " s"))
    assert "from the last" not in body  # four tasks: the 24 h are complete, not bounded
    for task_id in ids:
        assert f'href="/task/{task_id}"' in body
    assert body.count("tests.celeryapp.add") >= 3 and "tests.celeryapp.fail" in body
    listing = server.get("/workers").body
    assert '<td data-label="Failed 24 h"><span class="failed">1</span></td>' in listing


def test_hostile_task_names_on_the_worker_page_are_text(database_url, run_webui, redis_db):
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--batch-interval", "0.1",
                       "--no-enable-events")
    server.wait_http("/healthcheck", 200, timeout=30)
    hostile = "<script>alert(1)</script>"
    with dispatcher(redis_db, hostname="evil@host") as d:
        d.send("worker-online", freq=2.0, active=0, processed=0, sw_ident="py-celery", sw_ver="5.7")
        send_task_lifecycle(d, name=hostile)
    body = wait_for(lambda: (lambda b: b if "&lt;script&gt;alert(1)" in b else None)(
        server.get("/worker/evil@host").body), timeout=20, message="the hostile task never reached the page")
    assert hostile not in body


def test_kubernetes_pods_are_grouped_under_their_stable_name(database_url, run_webui, redis_db):
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--batch-interval", "0.1",
                       "--no-enable-events")
    server.wait_http("/healthcheck", 200, timeout=30)
    pods = {"celery@shop-7d9f8b6c5d-x2x9k": True, "celery@shop-7d9f8b6c5d-qw4zt": False,
            "celery@shop-6c5d7d9f8b-zz2kk": False, "celery@plainhost": True}
    for hostname, online in pods.items():
        with dispatcher(redis_db, hostname=hostname) as d:
            d.send("worker-online", freq=2.0, active=0, processed=0, sw_ident="py-celery")
            if not online:
                d.send("worker-offline")

    def grouped() -> str | None:
        body = server.get("/workers").body
        return body if "2 online, 2 offline" in body else None

    body = wait_for(grouped, timeout=20, message="the pods never all reached /workers")
    headers = re.findall(r'<span class="group-name">([^<]+)</span>\s*<span class="muted">([^<]+)</span>', body)
    # The group's header in the online table and again in the (collapsed) offline one; a lone host has none.
    assert headers == [("celery@shop", "1 online · 2 offline")] * 2
    assert "in 2 groups" in body and body.count(">Forget</button>") == 2
    offline = body[body.index('<details class="panel offline"'):]
    assert "celery@shop-7d9f8b6c5d-qw4zt" in offline and "celery@shop-7d9f8b6c5d-x2x9k" not in offline
