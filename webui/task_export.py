"""The tasks list as CSV or JSON, produced row by row for a streamed download.

Values are what the store holds (already masked and capped by the privacy filter when they were written), so
an export shows no more than the pages do. Times are ISO 8601 in UTC. In CSV, a cell that a spreadsheet
would run as a formula (starting with = + - @, a tab or a carriage return) gets a leading apostrophe: task
arguments come from anywhere.
"""
from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Iterator
from typing import Any

from webui import fastjson

FIELDS = ("uuid", "name", "state", "worker", "queue", "args", "kwargs", "result", "exception", "retries",
          "sent_at", "received_at", "started_at", "finished_at", "runtime", "eta", "parent_id", "root_id")
_TIMES = ("sent_at", "received_at", "started_at", "finished_at")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def record(task: Any) -> dict[str, Any]:
    """One task as a flat dict of FIELDS."""
    finished = next((t for t in (task.succeeded_at, task.failed_at, task.revoked_at, task.rejected_at,
                                 task.cancelled_at) if t is not None), None)
    values = {f: getattr(task, f, None) for f in FIELDS if f != "finished_at"}
    values["finished_at"] = finished
    values["root_id"] = task.root_id or task.uuid  # NULL in the store means "its own root"
    for name in _TIMES:
        values[name] = iso(values[name])
    return {f: values[f] for f in FIELDS}


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).isoformat(timespec="milliseconds")


def csv_lines(tasks: Iterable[Any]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(FIELDS)
    for task in tasks:
        yield line(_safe_cell(v) for v in record(task).values())


def _safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def json_lines(tasks: Iterable[Any]) -> Iterator[str]:
    """A JSON array, one task per line, written as it is read."""
    yield "["
    first = True
    for task in tasks:
        yield ("\n" if first else ",\n") + fastjson.dumps(record(task))
        first = False
    yield "\n]\n"
