"""The companion's `task-log` records (webui.agent.logs) to `task_log` rows, masked like a task's arguments.

They are no transition: the writer takes them out of the batch before merging (no event-log row, no count, no
rollup) and stores each line under its task and attempt. A line goes through the same Redactor as args and
tracebacks (mask words, card numbers, URL passwords, the configured patterns), since a log line can carry the
same secrets. The unique index (migration 0016) makes a record the stream delivers twice land once.
"""
from __future__ import annotations

from typing import Any

from webui.privacy import Redactor

LOG_EVENT = "task-log"
LINE_MAXSIZE = 4000  # characters kept of one line, after masking (the companion's own cap too)
COLUMNS = ("task_id", "attempt", "pid", "seq", "hostname", "at", "level", "logger", "message", "omitted",
           "omitted_bytes", "received")


def split(task_events: list[tuple[dict[str, Any], str | None]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """(the task events to merge, the log records)."""
    if not any(event["type"] == LOG_EVENT for event, _ in task_events):
        return task_events, []
    return ([item for item in task_events if item[0]["type"] != LOG_EVENT],
            [event for event, _ in task_events if event["type"] == LOG_EVENT])


def rows(logs: list[dict[str, Any]], task_ids: dict[str, int], redactor: Redactor) -> list[tuple[Any, ...]]:
    """One row per usable record: it needs its task, a process id and a line number."""
    found = []
    for event in logs:
        task_id, pid, seq = task_ids.get(event["uuid"]), event.get("pid"), event.get("seq")
        if task_id is None or type(pid) is not int or type(seq) is not int:
            continue
        retries = event.get("retries")
        attempt = retries + 1 if type(retries) is int and retries >= 0 else 1
        message = event.get("message")
        found.append((task_id, attempt, pid, seq, event.get("hostname"), _number(event.get("at")),
                      _text(event.get("level"), 16), _text(event.get("logger"), 255),
                      redactor.clean_text(message, LINE_MAXSIZE) if isinstance(message, str) else None,
                      _count(event.get("omitted")), _count(event.get("omitted_bytes")), event["local_received"]))
    return found


def write(db: Any, found: list[tuple[Any, ...]]) -> None:
    """Insert, skipping lines stored already (a redelivered record)."""
    if not found:
        return
    p = db.param
    sql = (f"INSERT INTO task_log ({', '.join(COLUMNS)}) VALUES ({', '.join([p] * len(COLUMNS))}) "
           "ON CONFLICT (task_id, attempt, pid, seq) DO NOTHING")
    cursor = db.cursor()
    try:
        cursor.executemany(sql, found)
    finally:
        cursor.close()


def _text(value: Any, size: int) -> str | None:
    return value[:size] if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None
