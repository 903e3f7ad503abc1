"""The Grafana dashboard and the Prometheus alert rules in docker/ ask only for series that a real `webui serve`
exports: a panel or an alert on a misspelt or never-exported metric would stay empty, or silent, forever."""
from __future__ import annotations

import re
import uuid

import redis
import yaml

from tests import celeryapp as tasks
from tests.integration.test_compose_stack import dashboard_queries
from tests.integration.test_metrics import SQLITE_ONLY, scrape
from tests.support.processes import REPO_ROOT
from tests.support.waiting import wait_for

RULE_FILES = sorted((REPO_ROOT / "docker" / "prometheus").glob("*.rules.yml"))
# Series Prometheus makes itself for every scrape target.
PROMETHEUS_OWN = {"up"}
METRIC = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(?=\{|\[|\)|$|\s*(?:==|>=|<=|>|<|!=|\bor\b|\band\b))")


def rule_queries() -> list[str]:
    return [rule["expr"] for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def metric_names(query: str) -> set[str]:
    """Names of the series a PromQL query selects (functions, `by (…)` labels and keywords are not)."""
    without_labels = re.sub(r"\b(?:by|on|without|ignoring)\s*\([^)]*\)", "", query)
    without_matchers = re.sub(r"\{[^}]*\}", "{}", without_labels)
    return {name for name in METRIC.findall(without_matchers)
            if name not in ("and", "or", "unless", "offset", "bool")}


def test_metric_names_are_found_in_queries() -> None:
    assert metric_names('sum by (name) (rate(celery_task_failed_total{name=~"$task"}[1m])) > 0') == {
        "celery_task_failed_total"}
    assert metric_names("celery_queue_length >= 1 and on (queue_name) celery_active_worker_count == 0") == {
        "celery_queue_length", "celery_active_worker_count"}
    assert metric_names('histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m] offset 15m)))') == {"x_bucket"}


@SQLITE_ONLY
def test_every_series_the_dashboard_and_the_rules_ask_for_is_exported(worker, database_url, run_webui) -> None:
    queue = f"dashboard-{uuid.uuid4().hex[:8]}"  # sampled, so celery_queue_length has a series
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval",
                       "0.1", "--no-enable-events", "--queue-sample-interval", "1")
    server.wait_http("/healthcheck", 200, timeout=30)
    wanted = set().union(*map(metric_names, dashboard_queries()), *map(metric_names, rule_queries()))
    assert len(wanted) >= 20, wanted
    try:
        tasks.add.apply_async((1, 1), queue=queue)  # waits: no worker consumes this queue
        for result in (tasks.add.delay(2, 2), tasks.fail.delay("dashboard"), tasks.retry_twice.delay()):
            result.get(timeout=30, propagate=False)

        def all_exported() -> bool:
            exported = {name for name, _ in scrape(server.get("/metrics").body)}
            return not wanted - exported - PROMETHEUS_OWN

        # On timeout the message shows the last value; say which names were missing instead of "set()".
        try:
            wait_for(all_exported, timeout=40, interval=1, message="waiting for every series")
        except AssertionError:
            exported = {name for name, _ in scrape(server.get("/metrics").body)}
            raise AssertionError(f"asked for, never exported: {sorted(wanted - exported - PROMETHEUS_OWN)}") from None
    finally:
        redis.Redis.from_url(worker.broker_url).delete(queue)

