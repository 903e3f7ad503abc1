"""One transition, two reports: a Celery event and a companion record of it are merged once.

A worker that sends task events and runs the companion (webui.agent) reports every transition twice: as an
event over PUB/SUB and as a record through the stream. Both are first-hand (merge.FIRST_HAND_SOURCES), so each
alone moves the task on; together they must count once in the event log, the rollups and /metrics.

The rule: a report is identified by (type, hostname), and the n-th report of a key from one source is a repeat
when the other source already gave n: whichever comes first is merged, the second is dropped before merging (not
logged, not counted). For each key a task keeps how many events and which records (by timestamp) it merged, in
`detail["heard"]`. Both sources report every occurrence once, in order, so counting pairs them whatever the
attempt: a retried task's second start is the second of each. (Keying by attempt too paired wrongly: an event
carries no attempt of its own, and one that arrived after the record of the next attempt's `task-received` was
given that attempt — a retried task's start and retry were then counted twice.) Two real executions on one
host (a duplicate delivery) are reported twice by both, so both survive; a record the companion dropped is
covered by its event, and an event PUB/SUB lost by its record. A record delivered again by the stream (a
collector killed before acknowledging) has a timestamp already listed, and is a repeat however it paired.

Only done while the collector reads the companion's stream (`agent_url`): without it nothing is kept per task.
"""
from __future__ import annotations

from typing import Any

from webui.collector import merge

PAIRED_TYPES = frozenset({"task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
                          "task-retried", "task-revoked", "task-rejected", "task-cancelled"})
HEARD = "heard"


def is_repeat(task: merge.TaskState, event: dict[str, Any], source: str | None) -> bool:
    """Whether this first-hand report repeats one already merged; records the report when it does not."""
    etype = event["type"]
    if etype not in PAIRED_TYPES or source not in merge.FIRST_HAND_SOURCES:
        return False
    key = f"{etype}:{event.get('hostname') or ''}"
    heard = task.detail.setdefault(HEARD, {})
    events, records = heard.get(key) or (0, [])
    if source == merge.AGENT_SOURCE:
        ts = event.get("timestamp")
        if ts in records:
            return True  # the stream delivered this very record again
        records = [*records, ts]
        repeat = len(records) <= events
    else:
        events += 1
        repeat = events <= len(records)
    heard[key] = [events, records]
    if repeat and source == merge.AGENT_SOURCE and etype == "task-sent":
        merge.keep_beat_stamp(task, event)  # beat's task-sent event came first: the stamp only the record has
    return repeat
