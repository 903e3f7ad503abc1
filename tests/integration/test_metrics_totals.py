"""/metrics' task totals are summed by the database, and come to exactly what retention folds from the same rows:
sent tasks, the queue-wait histogram and its sum, failures by exception class — on SQLite and PostgreSQL."""
from __future__ import annotations

import random

from webui.store.metrics_queries import OVERFLOW, TaskTotalsReader, fold_tasks
from webui.store.models import Task

NOW = 1_800_000_000.0
BOUNDS = (0.01, 0.1, 1.0, 10.0)
EXCEPTIONS = ["ValueError('bad')", "  pkg.errors.Timeout: slow", "KeyError", "¡Error", "", None,
              "X" * 200 + "('long')", "\tmod.Custom_Error2(1)"]


def make_rows(count: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(1, count + 1):
        sent = NOW - 3 * 86400 + i * 7.3
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


def as_folded(totals) -> dict[tuple[str, str, str], float]:
    """The reader's totals in `fold_tasks`' shape."""
    labels = [repr(float(b)) for b in BOUNDS] + [OVERFLOW]
    shaped: dict[tuple[str, str, str], float] = {}
    for name, counts in totals.counts.items():
        if counts["sent"]:
            shaped[(name, "sent", "")] = counts["sent"]
    for name, (buckets, total) in totals.wait.items():
        shaped.update({(name, "wait", label): n for label, n in zip(labels, buckets, strict=True) if n})
        shaped[(name, "wait_sum", "")] = total
    shaped.update({(name, "failed", cls): n for (name, cls), n in totals.failures.items()})
    return shaped


def test_the_database_sums_exactly_what_retention_would_fold(db) -> None:
    rows = make_rows(600)
    Task.insert_many(rows).execute()
    folded = fold_tasks(((r["name"], r["sent_at"], r["received_at"], r["started_at"], r["failed_at"],
                          r["exception"]) for r in rows), BOUNDS)

    totals = TaskTotalsReader(BOUNDS).read(NOW + 3 * 86400)  # every row settled: one pass of the database

    assert as_folded(totals) == folded
    classes = {cls for (_, metric, cls) in folded if metric == "failed"}
    assert classes == {"ValueError", "pkg.errors.Timeout", "KeyError", "unknown", "X" * 128,
                       "mod.Custom_Error2"}


def test_a_process_reading_as_rows_arrive_agrees_with_one_reading_them_all_at_once(db) -> None:
    rows = make_rows(600)
    early = TaskTotalsReader(BOUNDS)
    Task.insert_many(rows[:300]).execute()
    early.read(rows[299]["sent_at"] + 400)  # settles the first rows, one by one above the boundary after
    Task.insert_many(rows[300:]).execute()

    later = NOW + 3 * 86400
    assert early.read(later) == TaskTotalsReader(BOUNDS).read(later)
