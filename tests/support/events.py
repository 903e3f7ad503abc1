"""Publish real Celery events (kombu's wire format) without a worker, through Celery's own dispatcher."""
from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.events import EventDispatcher


@contextmanager
def dispatcher(broker_url: str, hostname: str = "fake@test", batched: bool = True,
               app: Celery | None = None) -> Iterator[EventDispatcher]:
    """A dispatcher that batches task events into `task.multi` messages as prefork workers do."""
    app = app or Celery(broker=broker_url)
    with app.connection_for_write() as conn:
        options: dict[str, Any] = {"buffer_group": ["task"], "buffer_limit": 24} if batched else {}
        with app.events.Dispatcher(conn, hostname=hostname, **options) as d:
            yield d
            d.flush()


def send_task_lifecycle(d: EventDispatcher, task_id: str | None = None, name: str = "fake.task") -> str:
    task_id = task_id or str(uuidlib.uuid4())
    now = time.time()
    d.send("task-received", uuid=task_id, name=name, args="(1,)", kwargs="{}", retries=0, eta=None,
           expires=None, root_id=task_id, parent_id=None, timestamp=now)
    d.send("task-started", uuid=task_id, timestamp=now + 0.001)
    d.send("task-succeeded", uuid=task_id, result="1", runtime=0.001, timestamp=now + 0.002)
    return task_id
