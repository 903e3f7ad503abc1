"""How detectors' summaries say durations and moments: "12 min", "since 11:03 UTC (12 min ago)"."""
from __future__ import annotations

import time
from urllib.parse import quote

DAY = 86_400.0


def duration(seconds: float) -> str:
    """A length of time in the largest unit that fits: "45 s", "12 min", "3.5 h", "2 d"."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", DAY), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:.0f} s"


def moment(at: float, now: float) -> str:
    """ "11:03 UTC (12 min ago)"; with the date once it is more than a day ago."""
    fmt = "%H:%M UTC" if now - at < DAY else "%Y-%m-%d %H:%M UTC"
    return f"{time.strftime(fmt, time.gmtime(at))} ({duration(now - at)} ago)"


def since(at: float, now: float) -> str:
    """ "since 11:03 UTC (12 min ago)"."""
    return f"since {moment(at, now)}"


def path(prefix: str, name: str) -> str:
    """A link inside the UI to a named thing: `/queue/a%20b`, `/worker/w1@host` ("@" and ":" are path-safe)."""
    return prefix + quote(name, safe="@:")
