"""What the companion says: records shaped like the Celery events of the same transitions (pure, no I/O).

Each builder returns the event Celery would send for that signal (celery-facts §1.2, §1.3: `type`, `uuid`,
`hostname`, `timestamp`, `utcoffset`, `pid`, and the event's own fields), plus `source: "agent"` and, on every
task record, `retries`: the companion knows the attempt even where Celery's events leave it out, so the collector
can tell which attempt a record belongs to (webui.collector.sources).
"""
from __future__ import annotations

import os
import time
from typing import Any

from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from celery.utils.time import utcoffset

SOURCE = "agent"
REPR_MAXSIZE = 1024  # as Celery's argsrepr_maxsize and resultrepr_maxsize
MESSAGE_MAXSIZE = 200  # characters of a progress message


def record(etype: str, hostname: str | None, **fields: Any) -> dict[str, Any]:
    """One record: the common event fields, then the event's own."""
    return {"type": etype, "hostname": hostname, "timestamp": time.time(), "utcoffset": utcoffset(),
            "pid": os.getpid(), "clock": None, "source": SOURCE, **fields}


def sent(headers: dict[str, Any], exchange: str | None, routing_key: str | None) -> dict[str, Any] | None:
    """`before_task_publish` (message protocol 2: the task's facts are in the headers)."""
    uuid = headers.get("id")
    if not isinstance(uuid, str):
        return None  # protocol 1 or not a task message
    return record("task-sent", anon_nodename(), uuid=uuid, name=headers.get("task"),
                  args=headers.get("argsrepr"), kwargs=headers.get("kwargsrepr"),
                  retries=_retries(headers.get("retries")), eta=headers.get("eta"), expires=headers.get("expires"),
                  root_id=headers.get("root_id"), parent_id=headers.get("parent_id"),
                  queue=routing_key if not exchange else None, exchange=exchange or "", routing_key=routing_key)


def received(request: Any, hostname: str | None) -> dict[str, Any]:
    """`task_received`, in the worker's main process: `request` is the worker's Request."""
    info = request.request_dict
    eta, expires = info.get("eta"), info.get("expires")
    return record("task-received", hostname, uuid=request.id, name=request.name, args=request.argsrepr,
                  kwargs=request.kwargsrepr, retries=_retries(info.get("retries")),
                  eta=None if eta is None else str(eta), expires=None if expires is None else str(expires),
                  root_id=info.get("root_id"), parent_id=info.get("parent_id"))


def task_record(etype: str, request: Any, **fields: Any) -> dict[str, Any]:
    """A record about the task `request` describes (the task's own request context, in the pool process)."""
    return record(etype, getattr(request, "hostname", None), uuid=request.id, retries=_retries(request.retries),
                  **fields)


def succeeded(request: Any, result: Any, runtime: float | None) -> dict[str, Any]:
    return task_record("task-succeeded", request, result=saferepr(result, REPR_MAXSIZE), runtime=runtime)


def failed(etype: str, request: Any, exception: Any, traceback: str | None) -> dict[str, Any]:
    """`task-failed` or `task-retried`: the exception as Celery's events show it (its repr), and the traceback."""
    return task_record(etype, request, exception=saferepr(exception, REPR_MAXSIZE), traceback=traceback)


def progress(request: Any, current: float, total: float | None, message: str | None,
             every: float | None = None) -> dict[str, Any]:
    """`report_progress` inside a task (a record Celery has no event for); `every`: the promise it makes."""
    promise = {} if every is None else {"every": every}
    return task_record("task-progress", request, current=_number(current), total=_number(total),
                       message=None if message is None else str(message)[:MESSAGE_MAXSIZE], **promise)


def promise(request: Any, every: float | None) -> dict[str, Any]:
    """`expect_progress` inside a task: the next report within `every` seconds (None: the promise is withdrawn,
    sent as 0 so that no step of the way can mistake it for a missing field)."""
    return task_record("task-progress", request, every=every or 0)


def log_line(request: Any, seq: int, line: Any, message: str) -> dict[str, Any]:
    """One line the task logged (webui.agent.logs): `seq` counts the attempt's lines in this process."""
    return task_record("task-log", request, seq=seq, at=line.created, level=line.levelname, logger=line.name,
                       message=message)


def log_omitted(request: Any, kept: int, lines: int, size: int) -> dict[str, Any]:
    """The cap's note, after the attempt's `kept` lines: `lines` more lines (`size` bytes) were not kept."""
    return task_record("task-log", request, seq=kept + 1, omitted=lines, omitted_bytes=size)


def revoked(request: Any, hostname: str | None, terminated: bool, signum: Any, expired: bool) -> dict[str, Any]:
    signal_number = int(signum) if signum is not None else None
    """`task_revoked`, in the worker's main process: `request` is the task's request context."""
    return record("task-revoked", hostname, uuid=request.id, retries=_retries(getattr(request, "retries", 0)),
                  terminated=bool(terminated), signum=signal_number, expired=bool(expired))


def from_message(etype: str, message: Any, hostname: str | None, **fields: Any) -> dict[str, Any] | None:
    """A record about the task a raw message carries (`task_rejected`, `task_unknown`)."""
    headers = getattr(message, "headers", None) or {}
    uuid = headers.get("id")
    if not isinstance(uuid, str):
        return None
    return record(etype, hostname, uuid=uuid, retries=_retries(headers.get("retries")), **fields)


def worker(etype: str, hostname: str, freq: float, **fields: Any) -> dict[str, Any]:
    """`worker-online`, `worker-heartbeat`, `worker-offline`, with what the companion adds (its drop count)."""
    from celery import __version__

    return record(etype, hostname, freq=freq, sw_ident="py-celery", sw_ver=__version__, sw_sys=os.uname().sysname,
                  **fields)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _retries(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
