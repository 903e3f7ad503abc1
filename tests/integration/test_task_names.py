"""The stored task names (Flower's `/api/task/types`) come from one index probe per name, on both databases:
each name once, sorted, tasks without a name left out, at most `limit`."""
from __future__ import annotations

from webui.store.models import Task
from webui.store.task_queries import task_names


def test_each_stored_name_once_in_order(db) -> None:
    names = ["proj.b", "proj.a", None, "proj.b", "proj.c", "proj.a", "", None, "proj.a.sub"]
    Task.insert_many([{"id": i, "uuid": f"t{i}", "name": name, "state": "SUCCESS", "updated_at": 0.0,
                       "retries": 0, "attempt": 0, "delivery": 0, "rank": 0, "started_attempt": 0,
                       "started_delivery": 0, "starts": 0, "executions": 1, "event_count": 1}
                      for i, name in enumerate(names, 1)]).execute()

    assert task_names(100) == ["", "proj.a", "proj.a.sub", "proj.b", "proj.c"]
    assert task_names(2) == ["", "proj.a"]


def test_no_tasks_no_names(db) -> None:
    assert task_names(100) == []
