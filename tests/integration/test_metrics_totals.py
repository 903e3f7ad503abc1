"""/metrics' task totals are summed by the database, and come to exactly what a brute-force count of the same
rows gives: sent tasks, the queue-wait histogram and its sum, failures by exception class — on SQLite and
PostgreSQL."""
from __future__ import annotations

from tests.support.metrics_count import NOW, as_counted, count_task_rows, make_rows
from webui.store.metrics_queries import TaskTotalsReader
from webui.store.models import Task

BOUNDS = (0.01, 0.1, 1.0, 10.0)


def test_the_database_sums_exactly_what_a_brute_force_count_gives(db) -> None:
    rows = make_rows(600)
    Task.insert_many(rows).execute()
    counted = count_task_rows(((r["name"], r["sent_at"], r["received_at"], r["started_at"], r["failed_at"],
                                r["exception"]) for r in rows), BOUNDS)

    totals = TaskTotalsReader(BOUNDS).read(NOW + 3 * 86400)  # every row settled: one pass of the database

    assert as_counted(totals, BOUNDS) == counted
    classes = {cls for (_, metric, cls) in counted if metric == "failed"}
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
