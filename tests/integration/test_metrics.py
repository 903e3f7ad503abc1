"""`/metrics` and the health probes against a real worker and `webui serve`; Debian's promtool and prometheus.

The session worker's broker is shared with other test sessions on this Redis, so counts of our own tasks are
lower bounds. promtool and prometheus come from Debian's `prometheus` package (.ci/run installs it).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

from tests import celeryapp as tasks
from tests.support.processes import LoggedProcess
from tests.support.services import free_port, unavailable
from tests.support.waiting import wait_for
from webui.auth.passwords import hash_password
from webui.store.database import bind_models, open_database

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SAMPLE = re.compile(r'^([a-zA-Z_:][\w:]*)(\{.*\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# celery-exporter's own names end in _count without being histograms; promtool's linter says so, and nothing else.
EXPORTER_NAMES = ("celery_active_consumer_count", "celery_active_worker_count")


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def value(samples, metric: str, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool is not on PATH: apt-get install prometheus")
    return path


def test_metrics_count_a_real_workers_tasks_and_promtool_accepts_them(server) -> None:
    ok = [tasks.add.delay(i, i) for i in range(3)]
    failed = [tasks.fail.delay(f"boom {i}") for i in range(2)]
    retried = tasks.retry_twice.delay()
    for result in (*ok, *failed, retried):
        result.get(timeout=30, propagate=False)

    def counted():
        samples = scrape(server.get("/metrics").body)
        enough = (value(samples, "celery_task_succeeded_total", name="tests.celeryapp.add") >= 3
                  and value(samples, "celery_task_failed_total", name="tests.celeryapp.fail",
                            exception="ValueError") >= 2
                  and value(samples, "celery_task_retried_total", name="tests.celeryapp.retry_twice") >= 2
                  and value(samples, "celery_task_succeeded_total", name="tests.celeryapp.retry_twice") >= 1)
        return samples if enough else None

    samples = wait_for(counted, timeout=30, interval=1, message="metrics did not count our tasks")
    add = {"name": "tests.celeryapp.add"}
    assert value(samples, "celery_task_sent_total", **add) >= 3
    assert value(samples, "celery_task_received_total", **add) >= 3
    assert value(samples, "celery_task_started_total", **add) >= 3
    assert value(samples, "celery_task_runtime_count", **add) >= 3
    assert value(samples, "celery_task_runtime_bucket", **add, le="+Inf") == value(
        samples, "celery_task_runtime_count", **add)
    assert value(samples, "celery_task_queue_wait_time_count", **add) >= 3
    assert value(samples, "celery_webui_collector_connected") == 1
    ups = [v for (name, labels), v in samples.items() if name == "celery_worker_up" and v == 1]
    assert ups, "no worker is up in /metrics"
    assert not any("task_id" in dict(labels) for _, labels in samples)

    time.sleep(5.5)  # past the cache: a second computation, still never lower
    again = scrape(server.get("/metrics").body)
    for key, number in samples.items():
        if key[0].endswith("_total") and key[0].startswith("celery_task_"):
            assert again.get(key, 0) >= number, key

    check = subprocess.run([promtool(), "check", "metrics"], input=server.get("/metrics").body,
                           capture_output=True, text=True, timeout=30)
    problems = [line for line in (check.stdout + check.stderr).splitlines() if line.strip()]
    assert check.returncode in (0, 3), problems  # 1: a parse error; 3: lint findings only
    assert all(line.startswith(EXPORTER_NAMES) and "_count" in line for line in problems), problems


def test_probes_answer_uptime_monitors_with_json_reasons(worker, database_url, run_webui) -> None:
    queue = f"metrics-probe-{uuid.uuid4().hex[:8]}"  # no worker consumes it: its messages wait
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval",
                       "0.1", "--no-enable-events", "--queue-sample-interval", "1")
    server.wait_http("/healthcheck", 200, timeout=30)
    try:
        for _ in range(3):
            tasks.add.apply_async((1, 1), queue=queue)
        deeper = wait_for(lambda: (r := server.get(f"/health/queue/{queue}?max=2")).status == 503
                          and r.json().get("depth") == 3 and r, timeout=30, interval=0.5,
                          message="the probe never saw the 3 waiting messages")
        assert deeper.json()["status"] == "fail" and "3 messages waiting, more than 2" in deeper.json()["reason"]
        fine = server.get(f"/health/queue/{queue}?max=3")
        assert fine.status == 200 and fine.json() == {"status": "ok", "queue": queue, "max": 3, "depth": 3}
    finally:
        redis.Redis.from_url(worker.broker_url).delete(queue)

    for bad in ("x", "-1", "1.5"):
        response = server.get(f"/health/queue/{queue}?max={bad}")
        assert response.status == 400 and "max must be a whole number" in response.json()["reason"]
    never = server.get("/health/queue/no-such-queue-ever")
    assert never.status == 503 and "never been sampled" in never.json()["reason"]

    workers = wait_for(lambda: (r := server.get("/health/workers")).status == 200 and r, timeout=30,
                       message="no worker online")
    assert workers.json()["online"] >= 1 and workers.json()["min"] == 1
    too_few = server.get("/health/workers?min=1000")
    assert too_few.status == 503 and "fewer than 1000" in too_few.json()["reason"]
    assert server.get("/health/workers?min=many").status == 400

    beat = server.get("/health/beat")
    assert beat.status == 503 and beat.json()["status"] == "unknown"
    assert beat.json()["status"] == "unknown" and "no beat schedule is watched" in beat.json()["reason"]


@SQLITE_ONLY
def test_a_real_prometheus_scrapes_with_an_api_token(worker, database_url, run_webui, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("prometheus is not on PATH: apt-get install prometheus")
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval",
                       "0.1", "--no-enable-events", "--basic-auth", f"alice:{hash_password('a long password')}")
    server.wait_http("/healthcheck", 200, timeout=30)
    assert server.get("/metrics").status == 401, "/metrics needs a token unless metrics_public"
    assert server.get("/health/workers").status == 401, "probes need a token unless probes_public"
    bind_models(open_database(database_url))
    from webui.auth import tokens

    _, token = tokens.create("prometheus", "viewer", "test")
    tasks.add.delay(2, 2).get(timeout=30)

    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: webui
    metrics_path: /metrics
    authorization:
      credentials: {token}
    static_configs:
      - targets: ["127.0.0.1:{server.port}"]
""")
    prometheus = LoggedProcess([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                f"--web.listen-address=127.0.0.1:{port}"], tmp_path / "prometheus.log")
    try:
        def succeeded() -> float | None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/api/v1/query", timeout=2,
                                      params={"query": 'celery_task_succeeded_total{name="tests.celeryapp.add"}'})
            except requests.RequestException:
                return None
            result = answer.json().get("data", {}).get("result", []) if answer.ok else []
            return float(result[0]["value"][1]) if result else None

        found = wait_for(succeeded, timeout=60, interval=1, message="Prometheus never stored the counter")
        assert found is not None and found >= 1
        up = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": 'up{job="webui"}'}).json()
        assert up["data"]["result"][0]["value"][1] == "1"
    finally:
        prometheus.stop(grace=10)
        print(prometheus.log_tail())
