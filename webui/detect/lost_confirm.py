"""Before a task is declared lost by heartbeats alone: ask the workers, read-only, whether anyone runs it.

Heartbeats that stopped say the monitor stopped hearing a worker, not that the worker died: its events may be
cut off while it works on. So each verdict of the heartbeat rules (webui.detect.lost_marker) is confirmed by two
inspect broadcasts before it is handed to the writer: `active` and `reserved` to every worker. A task is lost
only when its worker does not answer and no worker lists the task as active or reserved; the verdict's reason
then says so. When the broadcasts fail (the broker is down) nothing is confirmed: the next pass asks again.
"""
from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from webui import broadcasts

log = logging.getLogger(__name__)


def confirm(app: Celery, events: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """The `task-lost` events the workers' answers confirm, their reasons naming that evidence."""
    if not events:
        return []
    try:
        active = broadcasts.inspect(app, "active", timeout=timeout) or {}
        reserved = broadcasts.inspect(app, "reserved", timeout=timeout) or {}
    except Exception as exc:  # noqa: BLE001 - cannot ask: nothing is confirmed this pass
        log.info("cannot confirm %d lost task(s) with the workers (%s: %s)", len(events), type(exc).__name__, exc)
        return []
    answering = set(active) | set(reserved)
    listed = _task_ids(active) | _task_ids(reserved)
    confirmed = []
    for event in events:
        if event["hostname"] in answering or event["uuid"] in listed:
            continue
        confirmed.append({**event, "reason": (
            f"{event['reason']}; confirmed: {event['hostname']} did not answer, and none of the "
            f"{len(answering)} worker(s) that did lists the task as active or reserved")})
    return confirmed


def _task_ids(replies: dict[str, Any]) -> set[str]:
    ids = set()
    for tasks in replies.values():
        for task in tasks if isinstance(tasks, list) else ():
            if isinstance(task, dict) and isinstance(task.get("id"), str):
                ids.add(task["id"])
    return ids
