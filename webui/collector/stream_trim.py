"""Records the companion's stream trimmed before the collector's consumer group read them: counted from XINFO.

The workers bound the stream (`XADD … MAXLEN ~ max_length`): a monitor away longer than the bound covers, or
one too slow to keep up, is overtaken and the oldest unread entries are gone. Redis 7 keeps enough counters to
say exactly how many (pure arithmetic here; webui.collector.agent_stream reads the replies and acts):

- the stream's `entries-added` (A, every entry ever added), `length` (N), its first entry (F) and its
  `last-generated-id`;
- the group's `last-delivered-id` (L) and `entries-read` (R, the logical position of L: how many of the A
  entries come at or before it), or, when Redis lost track of R, `lag` (A − R, null when it cannot tell).

Entries added after L number A − R; those still in the stream after L are all N when F > L (or the stream is
empty), none when L is the stream's last id, and cannot be told cheaply otherwise. The difference was trimmed
(or deleted) unread. Reading does not repair R: Redis adds one per entry delivered, so a loss stays in the
group's counters (lag stays above the real backlog) until the collector corrects R (`XGROUP SETID …
ENTRIESREAD`) once the loss is recorded. That correction is what makes a restarted collector not report the
same loss again. Trimmed before the group existed is not counted: Redis then estimates R from the first entry
left, as if nothing had come before it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

GAP_AGENT_TRIMMED = "agent-stream-trimmed"


@dataclass(frozen=True)
class StreamState:
    added: int | None  # entries-added; None before Redis 7, which does not count
    length: int
    first_id: str | None  # None: the stream is empty
    last_id: str  # last-generated-id

    @classmethod
    def from_xinfo(cls, info: dict[str, Any]) -> StreamState:
        first = info.get("first-entry")
        added = info.get("entries-added")
        return cls(None if added is None else int(added), int(info.get("length") or 0),
                   None if not first else _text(first[0]), _text(info.get("last-generated-id") or "0-0"))


@dataclass(frozen=True)
class GroupState:
    last_delivered: str
    entries_read: int | None  # None: Redis lost track (or before Redis 7)
    lag: int | None  # None: Redis cannot tell (or before Redis 7)

    @classmethod
    def from_xinfo(cls, groups: list[dict[str, Any]], name: str) -> GroupState | None:
        for group in groups:
            if _text(group.get("name")) == name:
                read, lag = group.get("entries-read"), group.get("lag")
                return cls(_text(group.get("last-delivered-id") or "0-0"), None if read is None else int(read),
                           None if lag is None else int(lag))
        return None


@dataclass(frozen=True)
class Trimmed:
    """Entries trimmed before the group read them."""

    count: int
    after: float | None  # they were added after this time (the last entry the group read), when known
    before: float | None  # and before this one (the oldest entry the stream still holds), when known

    def span(self, now: float) -> tuple[float, float]:
        """The gap to record: from the first to the last time they may have been added, within [.., now]."""
        ended = min(self.before if self.before is not None else now, now)
        started = self.after if self.after is not None else ended
        return min(started, ended), ended

    def describe(self, stream: str) -> str:
        when = ""
        if self.after is not None and self.before is not None:
            when = f", added between {_clock(self.after)} and {_clock(self.before)}"
        elif self.before is not None:
            when = f", added before {_clock(self.before)}"
        return (f"{self.count} companion records were trimmed from the stream {stream} before the collector read "
                f"them{when}: lost. The monitor was away (or behind) longer than the stream's bound covers: "
                "raise the workers' max_length (WEBUI_AGENT_MAX_LENGTH, the variable of the monitor's "
                "agent_max_length too)")


def supports_counting(stream: StreamState) -> bool:
    """Redis 7 and later count the entries added: before, trimmed records cannot be counted."""
    return stream.added is not None


def count_trimmed(stream: StreamState, group: GroupState) -> Trimmed | None:
    """What was trimmed unread and not yet accounted in the group's counters; None: nothing, or not known now
    (the group is part way through the stream: a later check, once caught up or overtaken, tells)."""
    if stream.added is None:
        return None
    after_last = _entries_after(stream, group.last_delivered)
    if after_last is None:
        return None
    unread = _unread(stream.added, group)
    if unread is None:  # Redis lost track of the group's position (entries deleted ahead of it): no count
        return None
    missing = unread - after_last
    return _trimmed(missing, stream, group) if missing > 0 else None


def corrected_entries_read(stream: StreamState, group: GroupState, count: int) -> int | None:
    """The group's `entries-read` once `count` trimmed entries are accounted (for XGROUP SETID … ENTRIESREAD)."""
    position = group.entries_read
    if position is None and group.lag is not None and stream.added is not None:
        position = stream.added - group.lag
    if position is None or stream.added is None:
        return None
    return min(position + count, stream.added)


def id_time(entry_id: str) -> float | None:
    """A stream id's time (its first part is milliseconds since the epoch); None for 0-0."""
    ms = int(entry_id.split("-", 1)[0])
    return ms / 1000 if ms else None


def _unread(added: int, group: GroupState) -> int | None:
    if group.entries_read is not None:
        return added - group.entries_read
    return group.lag


def _entries_after(stream: StreamState, last_delivered: str) -> int | None:
    if stream.first_id is None or _after(stream.first_id, last_delivered):
        return stream.length
    if _id(stream.last_id) == _id(last_delivered):
        return 0
    return None


def _trimmed(count: int, stream: StreamState, group: GroupState) -> Trimmed:
    oldest_left = stream.first_id if stream.first_id is not None else stream.last_id
    before = id_time(oldest_left)
    if stream.first_id is not None and not _after(stream.first_id, group.last_delivered):
        before = id_time(group.last_delivered)  # found once caught up: lost some time before the last read
        return Trimmed(count, None, before)
    return Trimmed(count, id_time(group.last_delivered), before)


def _after(entry_id: str, other: str) -> bool:
    return _id(entry_id) > _id(other)


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
