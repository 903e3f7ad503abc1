"""What /metrics says, from plain data: runtime buckets regrouped exactly, worker series by stable group."""
from __future__ import annotations

import re

from webui import worker_groups
from webui.collector.rollups import RUNTIME_BOUNDS
from webui.metric_families import MetricOptions, regroup_runtime, task_families, worker_families
from webui.metrics import render
from webui.store.metrics_queries import TaskTotals, WorkerSeries, exception_class

OPTIONS = MetricOptions(runtime_bounds=(0.1, 1.0), wait_bounds=(1.0,), group_pattern=None)


def test_rollup_buckets_fold_into_the_chosen_bounds_without_estimating() -> None:
    counts = [0] * (len(RUNTIME_BOUNDS) + 1)
    counts[RUNTIME_BOUNDS.index(0.05)] = 2  # <= 0.05 s: under le=0.1
    counts[RUNTIME_BOUNDS.index(0.1)] = 1  # <= 0.1 s exactly: still le=0.1
    counts[RUNTIME_BOUNDS.index(0.25)] = 4  # (0.1, 0.25]: le=1.0
    counts[-1] = 1  # above 300 s: +Inf only

    assert regroup_runtime(counts, RUNTIME_BOUNDS, (0.1, 1.0)) == [3, 4, 1]


def test_task_series_carry_only_name_and_for_failures_the_exception() -> None:
    totals = TaskTotals(counts={"app.add": {"sent": 2, "received": 2, "succeeded": 1}},
                        runtime={}, wait={}, failures={("app.add", "ValueError"): 1})

    text = render(task_families(totals, OPTIONS, RUNTIME_BOUNDS))

    assert 'celery_task_sent_total{name="app.add"} 2' in text
    assert 'celery_task_started_total{name="app.add"} 0' in text
    assert 'celery_task_failed_total{name="app.add",exception="ValueError"} 1' in text
    assert "task_id" not in text and "uuid" not in text


def test_exception_labels_are_the_class_not_the_message() -> None:
    assert exception_class("ValueError('card 4111 declined')") == "ValueError"
    assert exception_class("  billing.errors.Declined: no") == "billing.errors.Declined"
    assert exception_class(None) == exception_class("(") == "unknown"
    assert len(exception_class("E" * 1000)) == 128


def test_grouped_workers_count_the_pods_online_and_sum_their_active_tasks() -> None:
    workers = [WorkerSeries("celery@web-7d9f8b6c5-x2x4z", True, 2), WorkerSeries("celery@web-7d9f8b6c5-b8k9m", True, 1),
               WorkerSeries("celery@web-5c7d8f9b6-q2w4r", False, 0), WorkerSeries("celery@ip-10-0-0-1", False, 0)]
    grouped = MetricOptions((1.0,), (1.0,), re.compile(worker_groups.DEFAULT_PATTERN))

    text = render(worker_families(workers, grouped))

    assert 'celery_worker_up{hostname="celery@web"} 2' in text
    assert 'celery_worker_tasks_active{hostname="celery@web"} 3' in text
    assert 'celery_worker_up{hostname="celery@ip-10-0-0-1"} 0' in text
    assert "x2x4z" not in text
    plain = render(worker_families(workers, OPTIONS))
    assert 'celery_worker_up{hostname="celery@web-7d9f8b6c5-x2x4z"} 1' in plain
