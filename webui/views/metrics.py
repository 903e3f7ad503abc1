"""`/metrics`: Prometheus text computed from the store at scrape time, cached `CACHE_SECONDS` per process.

Needs a login or an API token like any page (`Authorization: Bearer cwu_…`) unless `metrics_public` is set.
What each series means: docs/metrics.md.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app

from webui import metric_families, metrics
from webui.collector.rollups import RUNTIME_BOUNDS
from webui.store import metrics_queries

CACHE_SECONDS = 5.0

bp = Blueprint("metrics", __name__)


class MetricsCache:
    """This process's settled sums and its last rendering; one scrape computes while others wait for it."""

    def __init__(self, settings: Any) -> None:
        pattern = settings.worker_group_pattern if settings.metrics_group_workers else None
        self.options = metric_families.MetricOptions(
            runtime_bounds=tuple(float(b) for b in settings.metrics_runtime_buckets),
            wait_bounds=tuple(float(b) for b in settings.metrics_wait_buckets),
            group_pattern=re.compile(pattern) if pattern else None)
        self.worker_expiry = float(settings.metrics_worker_expiry)
        self.totals = metrics_queries.TaskTotalsReader(self.options.wait_bounds)
        self.lock = threading.Lock()
        self.text = ""
        self.at = -CACHE_SECONDS

    def render(self) -> str:
        with self.lock:
            if time.monotonic() - self.at >= CACHE_SECONDS:
                self.text = metrics.render(self.families())
                self.at = time.monotonic()
            return self.text

    def families(self) -> list[metrics.Family]:
        now = time.time()
        return [
            *metric_families.task_families(self.totals.read(now), self.options, RUNTIME_BOUNDS),
            *metric_families.worker_families(metrics_queries.workers(self.worker_expiry, now), self.options),
            *metric_families.queue_families(metrics_queries.queues(now)),
            *metric_families.collector_families(metrics_queries.collector(now)),
        ]


def init_app(app: Flask, settings: Any) -> None:
    app.extensions["webui_metrics"] = MetricsCache(settings)
    app.register_blueprint(bp)
    if settings.metrics_public:
        app.extensions["webui_auth"].public.add("metrics.metrics")


@bp.get("/metrics", endpoint="metrics")
def scrape() -> Response:
    cache: MetricsCache = current_app.extensions["webui_metrics"]
    return Response(cache.render(), status=200, content_type=metrics.CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})
