"""Per-minute rollups of task events: what the overview reads instead of scanning the task table.

Pure logic, no I/O: the writer hands each batch's task events and the merged task states to `accumulate`, and
writes the result with `Rows.write_rollups` (an additive upsert) in the batch's own transaction, so a rollup
row never counts an event that was not committed, nor misses one that was.

What is counted, and why:
- **Events, not states.** Each row counts the events workers reported in that minute: a task retried twice that
  then succeeds counts 3 received, 3 started, 2 retried and 1 succeeded. Counting events is exact and additive;
  a count of "tasks now in state X" would have to move tasks between minutes as their states change.
- **Only the event stream** (source None) and the companion's records (source "agent", webui.agent), which are
  first-hand too; a transition both report is counted once (webui.collector.sources drops the second).
  Repairs from `inspect` or the result backend are reconstructions after a gap: their times are the repair's or
  the backend's, and the real event may still arrive late (it is merged and would be counted a second time).
  So minutes inside a recorded gap are undercounted, and the overview says so next to the figures, rather than
  guessing.
- **The minute of the event's own timestamp** (the sender's clock), so a backlog committed late still lands in
  the minute it happened. An event whose timestamp is missing or more than a day away from when the collector
  received it (a broken clock) is put in the minute it was received, so it can't hide in 1970 or 2100.
- **The name comes from the merged task state**: `task-started` and `task-succeeded` carry only the uuid. The
  state after the whole batch is merged is used, so a `task-received` later in the same batch still names an
  earlier `task-started`. A task whose name is still unknown is counted under "" (shown as "unknown").
- **Runtime** of successful executions only (`task-succeeded` carries the worker's own `runtime`), as a sum, a
  count and a fixed log-spaced histogram (`RUNTIME_BOUNDS`) that `percentile` turns into p50/p95 estimates.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from webui.collector.merge import FIRST_HAND_SOURCES

MINUTE = 60
_CLOCK_TOLERANCE = 86_400.0  # seconds between an event's timestamp and its arrival before we stop trusting it

COUNT_COLUMNS = ("received", "started", "succeeded", "failed", "retried", "revoked", "rejected")
# Upper bounds (seconds) of the runtime histogram buckets; the last bucket is everything above 300 s.
RUNTIME_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BUCKET_COLUMNS = tuple(f"rt_b{i:02d}" for i in range(len(RUNTIME_BOUNDS) + 1))
# The order of a rollup row's values after (minute, name), as `accumulate` returns them and the table holds them.
VALUE_COLUMNS = (*COUNT_COLUMNS, "runtime_sum", "runtime_count", *BUCKET_COLUMNS)

_EVENT_COLUMN = {f"task-{c}": i for i, c in enumerate(COUNT_COLUMNS)}
_SUCCEEDED = COUNT_COLUMNS.index("succeeded")
_RUNTIME_SUM = VALUE_COLUMNS.index("runtime_sum")
_RUNTIME_COUNT = _RUNTIME_SUM + 1
_FIRST_BUCKET = _RUNTIME_COUNT + 1


class _Named(Protocol):
    name: str | None


def accumulate(task_events: Iterable[tuple[dict[str, Any], str | None]],
               states: Mapping[str, _Named]) -> dict[tuple[int, str], list[float]]:
    """{(minute start epoch, task name): values in `VALUE_COLUMNS` order} for one batch's stream events."""
    rows: dict[tuple[int, str], list[float]] = {}
    for event, source in task_events:
        column = _EVENT_COLUMN.get(event["type"])
        if column is None or source not in FIRST_HAND_SOURCES:
            continue
        state = states.get(event["uuid"])
        key = (event_minute(event), (state.name if state is not None else None) or "")
        row = rows.get(key)
        if row is None:
            row = rows[key] = [0] * len(VALUE_COLUMNS)
        row[column] += 1
        if column == _SUCCEEDED:
            runtime = event.get("runtime")
            if isinstance(runtime, (float, int)) and not isinstance(runtime, bool) and 0 <= runtime < math.inf:
                row[_RUNTIME_SUM] += runtime
                row[_RUNTIME_COUNT] += 1
                row[_FIRST_BUCKET + bisect.bisect_left(RUNTIME_BOUNDS, runtime)] += 1
    return rows


def event_minute(event: dict[str, Any]) -> int:
    """The start (epoch seconds) of the minute an event happened in; see the module docstring."""
    received: float = event["local_received"]
    ts = event.get("timestamp")
    if not isinstance(ts, (float, int)) or isinstance(ts, bool) or not abs(ts - received) <= _CLOCK_TOLERANCE:
        ts = received
    return int(ts // MINUTE) * MINUTE


def percentile(buckets: Sequence[float], q: float) -> float | None:
    """Estimate the q-quantile (0 < q < 1) of runtimes from histogram bucket counts (`RUNTIME_BOUNDS`).

    Linear within the bucket that holds it; the open last bucket answers its lower bound (at least 300 s).
    None when the histogram is empty.
    """
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            lower = RUNTIME_BOUNDS[i - 1] if i > 0 else 0.0
            if i == len(RUNTIME_BOUNDS):
                return lower
            return lower + (RUNTIME_BOUNDS[i] - lower) * (rank - seen) / count
        seen += count
    return RUNTIME_BOUNDS[-1]
