"""What `/metrics` says: celery-exporter's metric names and labels, plus the collector's health, from plain data.

Pure: the reads are webui.store.metrics_queries, the text format webui.metrics. docs/metrics.md lists every
family built here.
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from webui import worker_groups
from webui.metrics import Family, HistogramValue
from webui.store.metrics_queries import CollectorHealth, QueueSeries, TaskTotals, WorkerSeries

TASK_COUNTERS = (
    ("sent", "Tasks sent, by a producer with task_send_sent_event (one per task with a sent event)."),
    ("received", "task-received events: a worker took a task from its queue."),
    ("started", "task-started events: a worker began to execute a task."),
    ("succeeded", "task-succeeded events."),
    ("failed", "Failed tasks, by the class of their exception (one per task whose failure was seen)."),
    ("retried", "task-retried events."),
    ("revoked", "task-revoked events."),
    ("rejected", "task-rejected events: a worker rejected a task's message."),
)


@dataclass(frozen=True)
class MetricOptions:
    runtime_bounds: tuple[float, ...]  # a subset of the rollups' RUNTIME_BOUNDS
    wait_bounds: tuple[float, ...]
    group_pattern: re.Pattern[str] | None  # set: hostname labels are stable group names


def regroup_runtime(counts: Sequence[int], rollup_bounds: Sequence[float],
                    bounds: Sequence[float]) -> list[int]:
    """Rollup bucket counts (one per `rollup_bounds` + overflow) summed into `bounds` (+ overflow).

    Exact because every bound in `bounds` is one of `rollup_bounds`: bucket i (runtimes <= rollup_bounds[i])
    lands in the first chosen bucket whose bound is >= rollup_bounds[i].
    """
    result = [0] * (len(bounds) + 1)
    for i, count in enumerate(counts):
        if i < len(rollup_bounds):
            result[bisect.bisect_left(bounds, rollup_bounds[i])] += count
        else:
            result[-1] += count
    return result


def task_families(totals: TaskTotals, options: MetricOptions, rollup_bounds: Sequence[float]) -> list[Family]:
    families = []
    for event, help_text in TASK_COUNTERS:
        family = Family(f"celery_task_{event}_total", "counter", help_text)
        if event == "failed":
            for (name, exception), count in sorted(totals.failures.items()):
                family.add({"name": name, "exception": exception}, count)
        else:
            for name, per_event in sorted(totals.counts.items()):
                family.add({"name": name}, per_event.get(event, 0))
        families.append(family)
    runtime = Family("celery_task_runtime", "histogram",
                     "Seconds successful tasks ran (the worker's own runtime), from the rollups.",
                     bounds=options.runtime_bounds)
    for name, (counts, total) in sorted(totals.runtime.items()):
        regrouped = regroup_runtime(counts, rollup_bounds, options.runtime_bounds)
        if sum(regrouped):
            runtime.add({"name": name}, HistogramValue(regrouped, total))
    wait = Family("celery_task_queue_wait_time", "histogram",
                  "Seconds from a task's sending (else its receipt by a worker) to its start.",
                  bounds=options.wait_bounds)
    for name, (counts, total) in sorted(totals.wait.items()):
        wait.add({"name": name}, HistogramValue(counts, total))
    return [*families, runtime, wait]


def worker_families(workers: Sequence[WorkerSeries], options: MetricOptions) -> list[Family]:
    """Per hostname, or per stable group (up: workers online in it; active: their sum)."""
    up: dict[str, int] = {}
    active: dict[str, int] = {}
    for worker in workers:
        host = worker_groups.group_name(worker.hostname, options.group_pattern)
        up[host] = up.get(host, 0) + (1 if worker.online else 0)
        active[host] = active.get(host, 0) + worker.active
    grouped = " (workers online in the group)" if options.group_pattern else ""
    up_family = Family("celery_worker_up", "gauge", f"1 when the worker is online, 0 when offline{grouped}.")
    active_family = Family("celery_worker_tasks_active", "gauge", "Tasks the worker is executing (heartbeat).")
    for host in sorted(up):
        up_family.add({"hostname": host}, up[host])
        active_family.add({"hostname": host}, active[host])
    return [up_family, active_family]


def queue_families(queues: Sequence[QueueSeries]) -> list[Family]:
    length = Family("celery_queue_length", "gauge", "Messages waiting in the queue (latest sample).")
    consumers = Family("celery_active_consumer_count", "gauge",
                       "Consumers of the queue: the broker's count (RabbitMQ), else the workers consuming it.")
    workers = Family("celery_active_worker_count", "gauge", "Online workers consuming the queue.")
    for queue in queues:
        labels = {"queue_name": queue.name}
        if queue.depth is not None:
            length.add(labels, queue.depth)
        if queue.consumers is not None:
            consumers.add(labels, queue.consumers)
        workers.add(labels, queue.workers)
    return [length, consumers, workers]


def collector_families(health: CollectorHealth) -> list[Family]:
    def one(name: str, kind: str, help_text: str, value: float | None) -> Family:
        family = Family(f"celery_webui_collector_{name}", kind, help_text)
        if value is not None:
            family.add({}, value)
        return family

    known = health.known
    return [
        one("connected", "gauge", "1 when the leading collector is connected to the broker.",
            1 if health.connected else 0),
        one("heartbeat_age_seconds", "gauge", "Seconds since the leading collector last wrote its status.",
            health.heartbeat_age),
        one("last_event_age_seconds", "gauge", "Seconds since the collector last received an event.",
            health.last_event_age),
        one("events_total", "counter", "Events the current collector received (resets when it restarts).",
            health.events_total if known else None),
        one("events_malformed_total", "counter", "Events the current collector could not decode.",
            health.events_malformed if known else None),
        one("events_dropped_total", "counter", "Events the current collector lost: dropped when it fell behind "
            "(its buffer full), dropped by the durable event queue past its bounds, or trimmed from the "
            "companion's stream unread.",
            health.events_dropped if known else None),
        one("gaps_total", "counter", "Recorded intervals when the collector could not see events.",
            health.gaps_total),
        one("gaps_open", "gauge", "Gaps still open (events are being missed now).", health.gaps_open),
        one("gap_events_lost_total", "counter", "Events known lost in recorded gaps.", health.events_lost),
    ]
