"""The workers list's failure counts: the last 24 h per worker, counted by the database from at most `limit`
of the newest failures, saying when the limit was reached."""
from __future__ import annotations

from webui.store.models import Task
from webui.store.worker_queries import failures_by_worker

NOW = 1_800_000_000.0


def failure(i: int, worker: str | None, hours_ago: float) -> dict:
    at = NOW - hours_ago * 3600
    return {"id": i, "uuid": f"t{i}", "state": "FAILURE", "worker": worker, "failed_at": at, "updated_at": at,
            "retries": 0, "attempt": 0, "delivery": 0, "rank": 0, "started_attempt": 0, "started_delivery": 0,
            "starts": 0, "executions": 1, "event_count": 3}


def test_failures_of_the_last_day_per_worker(db) -> None:
    rows = [failure(1, "w1", 1), failure(2, "w1", 2), failure(3, "w2", 3), failure(4, None, 4),
            failure(5, "w2", 30), failure(6, "w3", 25)]  # the last two are older than a day
    Task.insert_many(rows).execute()

    assert failures_by_worker(NOW) == ({"w1": 2, "w2": 1}, False)
    assert failures_by_worker(NOW, limit=3) == ({"w1": 2, "w2": 1}, True)  # the newest 3 only
    assert failures_by_worker(NOW, limit=2) == ({"w1": 2}, True)
