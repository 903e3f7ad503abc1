"""The collector inspects the real worker in the background, and the workers pages show what it answered."""
from __future__ import annotations

import json
from urllib.parse import quote

from tests.support.collector import running_collector
from tests.support.waiting import wait_for


def inspection(store, hostname: str) -> dict | None:
    rows = store.rows("SELECT at, data FROM worker_inspection WHERE hostname = ?", (hostname,))
    return json.loads(rows[0]["data"]) if rows and rows[0]["data"] else None


def test_the_collector_stores_the_workers_inspection(worker, database_url, store):
    with running_collector(worker.app, database_url, inspect_interval=5):
        data = wait_for(lambda: inspection(store, worker.hostname), timeout=20,
                        message="the worker's inspection was never stored")

    assert data["stats"]["pool"]["max-concurrency"] == 2
    assert "celery" in [q["name"] for q in data["active_queues"]]
    assert "tests.celeryapp.add" in data["registered"]
    assert {"active", "reserved", "scheduled", "revoked", "conf"} <= set(data)
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
