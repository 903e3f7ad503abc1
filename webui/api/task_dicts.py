"""A stored task as Flower's `Task.as_dict()`: the same fields, in the same order, from our `task` row.
Celery's `as_dict()` has `root` and `parent` (the ids again, from its object links) beside `root_id` and
`parent_id`, so we have both too.

Flower keeps the last event's Lamport `clock`, the sender's hostname (`client`) and the children's ids in
memory; we have them in the event log and the parent links, which cost a query each: the task's own route
(`/api/task/info`) fills them in, the list (`/api/tasks`) leaves `clock` and `client` null and `children`
empty rather than run three queries per row.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webui.store.models import Task, TaskEvent
from webui.store.task_queries import MAX_CHILDREN

FIELDS = ("uuid", "name", "state", "received", "sent", "started", "rejected", "succeeded", "failed", "retried",
          "revoked", "args", "kwargs", "eta", "expires", "retries", "worker", "result", "exception",
          "timestamp", "runtime", "traceback", "exchange", "routing_key", "clock", "client", "root", "root_id",
          "parent", "parent_id", "children")
_TIMES = {"received": "received_at", "sent": "sent_at", "started": "started_at", "rejected": "rejected_at",
          "succeeded": "succeeded_at", "failed": "failed_at", "retried": "retried_at", "revoked": "revoked_at"}


# The columns `row_dict` reads: a list reads just these, as plain rows (building models cost half of it).
ROW_COLUMNS = ("id", "uuid", "name", "state", *_TIMES.values(), "cancelled_at", "updated_at", "args", "kwargs",
               "eta", "expires", "retries", "worker", "result", "exception", "runtime", "traceback", "exchange",
               "routing_key", "root_id", "parent_id")


def task_dict(task: Task) -> dict[str, Any]:
    """Flower's fields of `task`; what the row does not hold (list queries leave columns out) is null."""
    return row_dict(task.__data__)


def row_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """`task_dict` of a row read as a mapping of its columns (`ROW_COLUMNS`)."""
    times = {key: row.get(column) for key, column in _TIMES.items()}
    known = [t for t in (*times.values(), row.get("cancelled_at")) if t is not None]
    root_id = row.get("root_id") or row.get("uuid")  # NULL root_id: its own root (webui.store.models.Task)
    return {
        "uuid": row.get("uuid"), "name": row.get("name"), "state": row.get("state"), **times,
        "args": row.get("args"), "kwargs": row.get("kwargs"), "eta": row.get("eta"),
        "expires": row.get("expires"), "retries": row.get("retries") or 0, "worker": row.get("worker"),
        "result": row.get("result"), "exception": row.get("exception"),
        # Flower's `timestamp` is the last event's time: the latest time the row knows.
        "timestamp": max(known) if known else row.get("updated_at"),
        "runtime": row.get("runtime"), "traceback": row.get("traceback"), "exchange": row.get("exchange"),
        "routing_key": row.get("routing_key"), "clock": None, "client": None,
        "root": root_id, "root_id": root_id, "parent": row.get("parent_id"), "parent_id": row.get("parent_id"),
        "children": [],
    }


def task_info(task: Task) -> dict[str, Any]:
    """`task_dict` with the event log's last clock and sender, and the children's ids (at most 100)."""
    info = task_dict(task)
    last = (TaskEvent.select(TaskEvent.clock).where(TaskEvent.task_id == task.id, TaskEvent.clock.is_null(False))
            .order_by(TaskEvent.seq.desc()).first())
    sent = (TaskEvent.select(TaskEvent.hostname).where(TaskEvent.task_id == task.id, TaskEvent.type == "task-sent")
            .order_by(TaskEvent.seq).first())
    children = (Task.select(Task.uuid).where((Task.parent_id == task.uuid) & (Task.uuid != task.uuid))
                .order_by(Task.sent_at, Task.id).limit(MAX_CHILDREN))
    info.update(clock=last.clock if last else None, client=sent.hostname if sent else None,
                children=[child.uuid for child in children])
    return info
