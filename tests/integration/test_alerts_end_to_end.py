"""Alerts end to end with real processes: a worker of the test's own is SIGKILLed in the middle of a long task.

The task becomes LOST and the worker offline within a bounded time; the rules (from a rules file, as a team
keeping them in Git would) open one incident each, the webhook channel receives "opened" once and signed, and
when a worker of the same name comes back the worker incident resolves and "resolved" is sent.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from celery import Celery

from tests.support.processes import CeleryWorker
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SECRET = "webhook-secret"


class Receiver:
    """A local stand-in for a webhook endpoint: keeps every request's headers and body."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def messages(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def rules_file(tmp_path, receiver: Receiver, worker_name: str) -> str:
    path = tmp_path / "alerts.toml"
    path.write_text(f"""
[[channel]]
name = "on-call hook"
kind = "webhook"
url = "{receiver.url}"
secret = "{SECRET}"

[[rule]]
name = "Worker gone"
detector = "worker_offline"
scope = ["{worker_name}"]
severity = "critical"
channels = ["on-call hook"]
params = {{ grace_minutes = 0 }}

[[rule]]
name = "Lost work"
detector = "task_lost"
scope = ["tests.celeryapp.sleep"]
severity = "critical"
channels = ["on-call hook"]
""")
    return str(path)


def test_a_killed_worker_loses_its_task_opens_one_incident_notifies_once_and_resolves(
        redis_db, database_url, run_webui, tmp_path, store, receiver):
    name = f"e2e-{uuid.uuid4().hex[:6]}@testhost"
    client = Celery("e2e-client", broker=redis_db)
    workers = [CeleryWorker(client, redis_db, tmp_path / "worker.log", name=name)]
    worker = workers[0].start()
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--batch-interval", "0.1",
                       "--detect-interval", "1", "--no-alert-default-rules", "--external-url", "https://ops.example",
                       "--alert-rules-file", rules_file(tmp_path, receiver, name))
    server.wait_http("/healthcheck", 200, timeout=30)
    try:
        wait_for(lambda: store.scalar("SELECT online FROM worker WHERE hostname = ?", (name,)), timeout=20,
                 message="worker seen online")
        task_id = client.send_task("tests.celeryapp.sleep", args=[60]).id
        wait_for(lambda: (store.task(task_id) or {}).get("state") == "STARTED", timeout=20,
                 message="long task started")

        worker.process.kill(signal.SIGKILL)  # the host is gone: no worker-offline, no task event
        killed_at = time.time()
        wait_for(lambda: (store.task(task_id) or {}).get("state") == "LOST", timeout=40, interval=0.25,
                 message="task marked LOST")
        assert not store.scalar("SELECT online FROM worker WHERE hostname = ?", (name,))
        assert time.time() - killed_at < 40

        def opened() -> list[dict]:
            return [m for m in receiver.messages() if m["kind"] == "opened"]
        wait_for(lambda: {m["rule"] for m in opened()} == {"Worker gone", "Lost work"}, timeout=30,
                 interval=0.25, message="both incidents notified")
        time.sleep(3)  # three more rule passes: still open, nothing sent again
        assert sorted(m["rule"] for m in opened()) == ["Lost work", "Worker gone"]
        incidents = requests.get(server.url + "/api/v1/incidents?state=open", timeout=10).json()["incidents"]
        gone = [i for i in incidents if i["rule"] == "Worker gone"]
        assert len(gone) == 1 and gone[0]["subject"] == name and gone[0]["severity"] == "critical"
        lost = [i for i in incidents if i["rule"] == "Lost work"]
        assert len(lost) == 1 and lost[0]["subject"] == task_id

        message = next(m for m in opened() if m["rule"] == "Worker gone")
        assert message["link"] == f"https://ops.example/alerts/incidents/{gone[0]['id']}"
        headers, body = next((h, b) for h, b in receiver.received if json.loads(b)["rule"] == "Worker gone")
        lower = {k.lower(): v for k, v in headers.items()}
        expected = hmac.new(SECRET.encode(), f"{lower['x-webui-timestamp']}.".encode() + body,
                            hashlib.sha256).hexdigest()
        assert lower["x-webui-signature"] == f"sha256={expected}"

        workers.append(CeleryWorker(client, redis_db, tmp_path / "worker-2.log", name=name))
        workers[-1].start()
        wait_for(lambda: any(m["kind"] == "resolved" and m["rule"] == "Worker gone" for m in receiver.messages()),
                 timeout=30, interval=0.25, message="resolved sent when the worker came back")
        timeline = requests.get(f"{server.url}/api/v1/incidents/{gone[0]['id']}", timeout=10).json()["timeline"]
        kinds = [e["kind"] for e in timeline]
        assert kinds[0] == "opened" and "resolved" in kinds and kinds.count("notified") == 2
    finally:
        for started in workers:
            started.stop(grace=5)
