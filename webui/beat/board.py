"""What the beat page, the API and /health/beat show: each stored entry judged as of the watcher's last pass.

Reads the store only (entries, their recent fires with the resulting task's state, the watcher's row) and
judges with webui.beat.status. The evidence is as fresh as the watcher's last pass; when that pass is old
(the collector is down, or another process leads and stopped), `stale` says so and the verdicts say "as of".
"""
from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from typing import Any

from peewee import JOIN

from webui import fastjson
from webui.beat import describe as schedule_text
from webui.beat import status as beat_status
from webui.beat.entries import RECORD_LAG
from webui.store.models import BeatEntry, BeatFire, BeatWatch, Task

RECENT_FIRES = 20
STALE_PASSES = 3  # passes missed before the evidence is called stale


@dataclass
class BoardEntry:
    row: BeatEntry
    status: beat_status.EntryStatus

    @property
    def schedule(self) -> dict[str, Any]:
        return fastjson.loads_as(self.row.schedule, dict)

    @property
    def schedule_text(self) -> str:
        return schedule_text.describe(self.schedule)

    @property
    def timezone(self) -> str | None:
        value = self.schedule.get("timezone")
        return str(value) if value else None

    @property
    def args(self) -> list[Any]:
        return fastjson.loads_as(self.row.args, list)

    @property
    def kwargs(self) -> dict[str, Any]:
        return fastjson.loads_as(self.row.kwargs, dict)

    @property
    def options(self) -> dict[str, Any]:
        return fastjson.loads_as(self.row.options, dict)


@dataclass
class Board:
    entries: list[BoardEntry]
    liveness: beat_status.BeatLiveness
    as_of: float | None  # the end of the watcher's last pass; None: it has not run yet
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    pong_nodes: list[str] = field(default_factory=list)
    stale: bool = False

    @property
    def problems(self) -> list[BoardEntry]:
        return [e for e in self.entries if e.status.problem]

    @property
    def missed(self) -> list[BoardEntry]:
        return [e for e in self.entries if e.status.state == beat_status.MISSED]


def grace_for(name: str, overrides: tuple[str, ...]) -> float | None:
    """The first `beat_grace` PATTERN=SECONDS whose pattern matches `name`, else None (derived)."""
    for item in overrides:
        pattern, _, seconds = item.rpartition("=")
        if fnmatch.fnmatchcase(name, pattern):
            return float(seconds)
    return None


def load_board(settings: Any, app_timezone: str | None, *, include_removed: bool = False,
               now: float | None = None) -> Board:
    watch = BeatWatch.get_or_none(BeatWatch.id == 1)
    as_of = watch.checked_at if watch is not None else None
    now = time.time() if now is None else now
    query = BeatEntry.select().order_by(BeatEntry.name, BeatEntry.source)
    if not include_removed:
        query = query.where(BeatEntry.removed_at.is_null())
    judged_at = as_of if as_of is not None else now
    entries = [judge_row(row, settings, app_timezone, judged_at, recent_fires(row.id)) for row in query]
    pong_at = watch.pong_at if watch is not None else None
    ping_at = watch.ping_at if watch is not None else None
    liveness = beat_status.liveness([e.status for e in entries], judged_at, pong_at=pong_at, ping_at=ping_at)
    stale = as_of is None or now - as_of > STALE_PASSES * settings.beat_interval + 5
    return Board(entries, liveness, as_of, fastjson.loads_as(watch.sources if watch else None, dict),
                 fastjson.loads_as(watch.pong_nodes if watch else None, list), stale)


def load_entry(entry_id: int, settings: Any, app_timezone: str | None,
               fires: int = 200) -> tuple[BoardEntry, Board] | None:
    row = BeatEntry.get_or_none(BeatEntry.id == entry_id)
    if row is None:
        return None
    board = load_board(settings, app_timezone, include_removed=True)
    as_of = board.as_of if board.as_of is not None else time.time()
    return judge_row(row, settings, app_timezone, as_of, recent_fires(row.id, fires)), board


def judge_row(row: BeatEntry, settings: Any, app_timezone: str | None, as_of: float,
              fires: list[beat_status.Fire]) -> BoardEntry:
    facts = beat_status.EntryFacts(
        name=row.name, schedule=fastjson.loads_as(row.schedule, dict), enabled=bool(row.enabled),
        removed=row.removed_at is not None, first_seen=row.first_seen, last_run_at=row.last_run_at,
        record_lag=RECORD_LAG.get(row.source, 0.0), fires=fires, grace=grace_for(row.name, settings.beat_grace),
        timezone=app_timezone)
    return BoardEntry(row, beat_status.judge(facts, as_of))


def recent_fires(entry_id: int, limit: int = RECENT_FIRES) -> list[beat_status.Fire]:
    """The entry's newest fires first, each with its task's state now (the fire's outcome); failed publishes
    are among them, with their exception."""
    query: Any = (BeatFire.select(BeatFire.at, BeatFire.task_uuid, BeatFire.sender, Task.state, BeatFire.due,
                                  BeatFire.failed)
                  .join(Task, JOIN.LEFT_OUTER, on=(Task.uuid == BeatFire.task_uuid))
                  .where(BeatFire.entry_id == entry_id).order_by(BeatFire.at.desc()).limit(limit).tuples())
    return [beat_status.Fire(*row) for row in query]

