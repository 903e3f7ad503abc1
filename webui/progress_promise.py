"""A running task's promise of a progress report every N seconds (webui.agent.expect_progress), and whether it
holds. Pure: the stalled-task detector, the task page and the JSON API read the same verdict from a task row.

The promise's clock restarts at every sign of life the task gives itself: its start, the promise (made or
changed), and each progress report of the running attempt. It is broken once none came for longer than `every`
plus `GRACE_SECONDS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The slack between a report the task made in time and the store knowing of it, none of it the task's fault:
# report_progress sends at most one record a second, so a call the rate limit skipped can leave a gap of up to
# `every` + 1 s between records (webui.agent.PROGRESS_EVERY); the companion's publisher drains its buffer every
# 0.1 s; the collector reads the stream every 0.5 s at most and commits its batch within a second or two. 5 s
# covers that with room, and is small next to any promise worth making (at least 1 s, usually tens).
GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Promise:
    every: float  # seconds between reports, as the task promised
    last_at: float  # the newest sign of life: start, promise or report (the task's clock)
    last_report_at: float | None  # the newest progress report of the running attempt, if any

    def silent(self, now: float) -> float:
        """Seconds since the last sign of life."""
        return max(0.0, now - self.last_at)

    def broken(self, now: float, grace: float = GRACE_SECONDS) -> bool:
        return self.silent(now) > self.every + grace

    def broken_at(self, grace: float = GRACE_SECONDS) -> float:
        return self.last_at + self.every + grace

    def text(self, now: float, grace: float = GRACE_SECONDS) -> str:
        """ "promised progress every 30 s; none for 2 min 10 s" once broken, else "…; last 4 s ago"."""
        promised = f"promised progress every {clock_duration(self.every)}"
        silent = self.silent(now)
        if self.broken(now, grace):
            return f"{promised}; none for {clock_duration(silent)}"
        return f"{promised}; last {clock_duration(silent)} ago"


def of_task(every: float | None, started_at: float | None, attempt: int, detail: dict[str, Any]) -> Promise | None:
    """The promise a task row holds (`progress_every`, `started_at`, `attempt`, its parsed `detail`), if any."""
    seconds = _number(every)
    if seconds is None or seconds <= 0:
        return None
    progress = detail.get("progress")
    report_at = _number(progress.get("at")) if isinstance(progress, dict) \
        and progress.get("attempt", attempt) == attempt else None
    signs = [t for t in (_number(started_at), _number(detail.get("promised_at")), report_at) if t is not None]
    if not signs:
        return None  # never heard it start nor promise: nothing to measure silence from
    return Promise(seconds, max(signs), report_at)


def clock_duration(seconds: float) -> str:
    """A length of time in its two largest units, as a clock reads: "45 s", "2 min 10 s", "1 h 5 min", "3 d 2 h"."""
    total = max(0, round(seconds))
    units = (("d", 86_400), ("h", 3600), ("min", 60), ("s", 1))
    for index, (name, size) in enumerate(units):
        if total >= size or name == "s":
            whole, rest = divmod(total, size)
            if index + 1 < len(units):
                smaller, small_size = units[index + 1]
                part = rest // small_size
                if part:
                    return f"{whole} {name} {part} {smaller}"
            return f"{whole} {name}"
    raise AssertionError("unreachable: the seconds unit always matches")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
