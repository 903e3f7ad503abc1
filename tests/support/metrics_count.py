"""/metrics' task totals counted by brute force: every stored row read into Python and counted one by one."""
from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Sequence
from typing import Any

from peewee import Database

from webui.collector.rollups import BUCKET_COLUMNS, COUNT_COLUMNS
from webui.store.metrics_queries import OVERFLOW, TaskTotals, exception_class

Counted = dict[tuple[str, str, str], float]  # (name, metric, label) -> value
NOW = 1_800_000_000.0
EXCEPTIONS = ["ValueError('bad')", "  pkg.errors.Timeout: slow", "KeyError", "¡Error", "", None,
              "X" * 200 + "('long')", "\tmod.Custom_Error2(1)"]


def make_rows(count: int, seed: int = 3, first_id: int = 1, start: float = NOW - 3 * 86400) -> list[dict]:
    """Task rows of three names, 7.3 s apart from `start`: 30% failed, waits of every bucket, some unknown."""
    rng = random.Random(seed)
    rows = []
    for i in range(first_id, first_id + count):
        sent = start + (i - first_id + 1) * 7.3
        failed = rng.random() < 0.3
        rows.append({
            "id": i, "uuid": f"t-{i}", "name": rng.choice(["app.add", "app.mail", None]),
            "state": "FAILURE" if failed else "SUCCESS",
            "sent_at": sent if rng.random() < 0.8 else None,
            "received_at": sent + rng.choice([0.001, 0.1, 0.3]) if rng.random() < 0.9 else None,
            # waits that no binary fraction holds exactly, some negative (a clock behind), some unknown
            "started_at": sent + rng.choice([0.003, 0.07, 0.1, 0.2, 0.7, 9.99, 42.1, -0.5]) if rng.random() < 0.9
            else None,
            "failed_at": sent + 50 if failed else None,
            "exception": rng.choice(EXCEPTIONS) if failed else None, "updated_at": sent,
            "retries": 0, "attempt": 0, "delivery": 0, "rank": 0, "started_attempt": 0, "started_delivery": 0,
            "starts": 0, "executions": 1, "event_count": 3,
        })
    return rows


def count_task_rows(rows: Iterable[tuple[Any, ...]], wait_bounds: Sequence[float]) -> Counted:
    """What task rows (name, sent_at, received_at, started_at, failed_at, exception) add to the totals."""
    counted: Counted = {}

    def add(key: tuple[str, str, str], value: float) -> None:
        counted[key] = counted.get(key, 0.0) + value

    for name, sent_at, received_at, started_at, failed_at, exception in rows:
        name = name or ""
        if sent_at is not None:
            add((name, "sent", ""), 1)
        queued_at = sent_at if sent_at is not None else received_at
        if started_at is not None and queued_at is not None:
            wait = max(0.0, started_at - queued_at)
            bucket = bisect.bisect_left(wait_bounds, wait)
            add((name, "wait", repr(float(wait_bounds[bucket])) if bucket < len(wait_bounds) else OVERFLOW), 1)
            add((name, "wait_sum", ""), round(wait * 1_000_000))  # whole µs, as the database sums them
        if failed_at is not None:
            add((name, "failed", exception_class(exception)), 1)
    return {key: value / 1_000_000 if key[1] == "wait_sum" else value for key, value in counted.items()}


def count_stored(db: Database, wait_bounds: Sequence[float]) -> Counted:
    """Every task row and rollup minute stored now, counted in Python."""
    tasks = db.execute_sql("SELECT name, sent_at, received_at, started_at, failed_at, exception FROM task")
    counted = count_task_rows(tasks.fetchall(), wait_bounds)
    columns = (*COUNT_COLUMNS, "runtime_sum", *BUCKET_COLUMNS)
    for name, *values in db.execute_sql(f"SELECT name, {', '.join(columns)} FROM task_minute").fetchall():
        for column, value in zip(columns, values, strict=True):
            if value:
                counted[(name, "rollup", column)] = counted.get((name, "rollup", column), 0) + value
    return counted


def as_counted(totals: TaskTotals, wait_bounds: Sequence[float]) -> Counted:
    """The reader's totals in the brute-force shape (zeros left out)."""
    labels = [repr(float(b)) for b in wait_bounds] + [OVERFLOW]
    shaped: Counted = {}
    for name, counts in totals.counts.items():
        shaped.update({(name, "rollup", column): counts[column] for column in COUNT_COLUMNS if counts[column]})
        if counts["sent"]:
            shaped[(name, "sent", "")] = counts["sent"]
    for name, (buckets, runtime) in totals.runtime.items():
        shaped.update({(name, "rollup", column): n for column, n in zip(BUCKET_COLUMNS, buckets, strict=True) if n})
        if runtime:
            shaped[(name, "rollup", "runtime_sum")] = runtime
    for name, (buckets, total) in totals.wait.items():
        shaped.update({(name, "wait", label): n for label, n in zip(labels, buckets, strict=True) if n})
        if total:
            shaped[(name, "wait_sum", "")] = total
    shaped.update({(name, "failed", cls): n for (name, cls), n in totals.failures.items()})
    return shaped
