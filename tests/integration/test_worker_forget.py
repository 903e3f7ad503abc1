"""Forgetting an offline worker: refused cross-site, done same-origin, kept across a collector restart, and
undone by the worker itself when it sends events again. A real worker, a real `webui serve`."""
from __future__ import annotations

import http.client
import uuid
from urllib.parse import urlencode, urlsplit

from celery import Celery

from tests.support.processes import CeleryWorker, HttpResponse
from tests.support.waiting import wait_for


def post(server, path: str, form: dict[str, str], headers: dict[str, str] | None = None) -> HttpResponse:
    """POST a form without following redirects (the 303 is part of what is tested)."""
    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    try:
        connection.request("POST", path, body=urlencode(form), headers={
            "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        response = connection.getresponse()
        return HttpResponse(response.status, response.read().decode(errors="replace"), dict(response.getheaders()))
    finally:
        connection.close()


def serve(run_webui, broker: str, database_url: str):
    server = run_webui("serve", "--broker", broker, "--database", database_url, "--batch-interval", "0.1",
                       "--no-enable-events", "--inspect-interval", "5")
    server.wait_http("/healthcheck", 200, timeout=30)
    return server


def listed(server, hostname: str) -> str | None:
    """'online', 'offline' or None (not on /workers)."""
    body = server.get("/workers").body
    if f'value="{hostname}"' in body:  # only offline rows carry a forget form
        return "offline"
    return "online" if f">{hostname}</a>" in body else None


def test_a_forgotten_worker_stays_forgotten_until_it_sends_events_again(redis_db, database_url, run_webui,
                                                                         tmp_path, store):
    server = serve(run_webui, redis_db, database_url)
    worker = CeleryWorker(Celery(broker=redis_db), redis_db, tmp_path / "worker.log",
                          name=f"forgetme-{uuid.uuid4().hex[:8]}@%h")
    hostname = worker.hostname
    worker.start()
    try:
        wait_for(lambda: listed(server, hostname) == "online", timeout=20, message="worker never listed online")
        worker.stop()  # a warm shutdown sends worker-offline
        wait_for(lambda: listed(server, hostname) == "offline", timeout=20, message="worker never went offline")

        # Cross-site, or saying nothing about where it comes from: refused, and the worker stays.
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                        {"Referer": "http://evil.example/page"}, {}):
            refused = post(server, "/workers/forget", {"hostname": hostname}, headers)
            assert refused.status == 403, headers
            assert "Refused as a cross-site request" in refused.body
        assert listed(server, hostname) == "offline"

        # Bad input is a 400, an unknown worker a 404, never a 500.
        same_origin = {"Origin": server.url}
        assert post(server, "/workers/forget", {}, same_origin).status == 400
        assert post(server, "/workers/forget", {"hostname": "x" * 300}, same_origin).status == 400
        assert post(server, "/workers/forget", {"hostname": "nobody@nowhere"}, same_origin).status == 404

        done = post(server, "/workers/forget", {"hostname": hostname}, same_origin)
        assert done.status == 303 and done.headers["Location"].startswith("/workers?forgot=")
        assert listed(server, hostname) is None
        assert "1 forgotten" in server.get("/workers").body
        assert "Forgotten: hidden from the workers list" in server.get(f"/worker/{hostname}").body

        # A new collector loads every worker into its memory and rewrites the ones it touches: still forgotten.
        server.stop()
        server = serve(run_webui, redis_db, database_url)
        wait_for(lambda: (store.status() or {}).get("connected"), timeout=20, message="collector never connected")
        heartbeat = store.status()["heartbeat_at"]
        wait_for(lambda: store.status()["heartbeat_at"] > heartbeat + 2, timeout=10,
                 message="the new collector never committed its ticks")
        assert listed(server, hostname) is None
        row = store.rows("SELECT online, forgotten_at, last_seen FROM worker WHERE hostname = ?", (hostname,))[0]
        assert not row["online"] and row["forgotten_at"] == row["last_seen"]

        # The worker comes back: its events bring it back, online.
        worker.start()
        wait_for(lambda: listed(server, hostname) == "online", timeout=20,
                 message="the forgotten worker never came back when it sent events")
        assert "0 forgotten" not in server.get("/workers").body
        online = post(server, "/workers/forget", {"hostname": hostname}, {"Sec-Fetch-Site": "same-origin"})
        assert online.status == 409 and "is online" in online.body
    finally:
        worker.stop()
