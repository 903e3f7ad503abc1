"""The beat watcher: every `beat_interval` seconds, read the schedules, find the new fires, ping beat.

It runs in the leading collector as a helper thread, reads the store directly (tasks since its cursor), and
hands what it found to the writer, the only database writer, as one `BeatPass` written in one transaction
(webui.beat.beat_rows). Judging on time / late / missed is left to the readers (webui.beat.board): the store
holds evidence, never a verdict that could go stale.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from peewee import Database

from webui import broadcasts, fastjson
from webui.beat.entries import ScheduleEntry
from webui.beat.fire_matching import EntryKey, FireMatcher, WatchedEntry, stamp_of
from webui.beat.reading import SourceReport, SourceSet
from webui.privacy import Redactor
from webui.store.database import discard_connection

log = logging.getLogger(__name__)

SCAN_LIMIT = 20000  # tasks looked at per pass; a backlog is worked off over the next passes
BACKFILL_PER_TASK = 200  # on a first start, this many recent tasks per watched task name are matched
NAME_WAIT = 60.0  # seconds a task row may stay nameless (its first events lost or late) before it is passed
# Seconds a watched task's row may wait for its task-sent record before it is matched without it. The worker's
# task-received can be stored first; the stamp naming the entry (webui.agent.beat) rides on the task-sent record,
# and without it the row is no fire of an entry whose fires are stamped: the fire would be missed for good.
SENT_WAIT = 10.0
PING_TIMEOUT = 1.0


@dataclass
class FoundFire:
    entry: EntryKey  # (source, name): the writer resolves it to the entry's row
    task_uuid: str
    at: float
    sender: str | None
    due: float | None = None  # the slot's due time, when the companion in beat stamped the fire


@dataclass
class BeatPass:
    """One pass's findings, written by the writer in one transaction."""

    at: float
    entries: list[ScheduleEntry]
    read_ok: set[str]
    reports: dict[str, SourceReport]
    fires: list[FoundFire] = field(default_factory=list)
    task_cursor: int = 0
    ping_at: float | None = None
    pong_nodes: list[str] | None = None  # None: not pinged this pass


class BeatWatcher:
    def __init__(self, app: Celery, db: Database, redactor: Redactor, sources: SourceSet, *,
                 ping: bool, known_workers: Callable[[], set[str]]) -> None:
        self.app, self.db, self.redactor, self.sources = app, db, redactor, sources
        self.ping = ping
        self.known_workers = known_workers
        self.cursor: int | None = None
        self.stamped: set[EntryKey] = set()  # entries whose fires carry the companion's stamp (fire_matching)

    def run_pass(self) -> BeatPass:
        read = self.sources.read()
        now = time.time()
        result = BeatPass(now, read.entries, read.read_ok, read.reports)
        watched, new = self._watched_entries(read.entries, read.read_ok)
        if self.cursor is None:
            self.cursor = self._stored_cursor()
        if not watched:
            pass  # nothing to match: the cursor waits, so the first entries still get their history
        elif self.cursor == 0:
            result.fires, self.cursor = self._backfill(watched)
        else:
            # An entry seen for the first time gets its recent history, as on a first start.
            history, start = self._backfill(new, upto=self.cursor) if new else ([], self.cursor)
            result.fires, self.cursor = self._scan(watched, start, now)
            result.fires = history + result.fires
        result.task_cursor = self.cursor
        if self.ping:
            result.ping_at = time.time()
            result.pong_nodes = self._ping_beat()
        return result

    # -- fires -----------------------------------------------------------------------------------------
    def _watched_entries(self, fresh: list[ScheduleEntry],
                         read_ok: set[str]) -> tuple[list[WatchedEntry], list[WatchedEntry]]:
        """This pass's entries, plus the stored ones of a source that failed to read this time (its entries
        keep getting their fires while it is down); and, of those, the ones not stored yet."""
        rows = self.db.execute_sql(
            "SELECT source, name, task, args, kwargs FROM beat_entry WHERE removed_at IS NULL").fetchall()
        stored = {(row[0], row[1]) for row in rows}
        watched = [WatchedEntry((e.source, e.name), e.task, e.args, e.kwargs) for e in fresh]
        new = [w for w in watched if w.key not in stored]
        watched += [WatchedEntry((row[0], row[1]), row[2], fastjson.loads_as(row[3], list),
                                 fastjson.loads_as(row[4], dict)) for row in rows if row[0] not in read_ok]
        return watched, new

    def _stored_cursor(self) -> int:
        row = self.db.execute_sql("SELECT task_cursor FROM beat_watch WHERE id = 1").fetchone()
        return int(row[0]) if row and row[0] else 0

    def _backfill(self, watched: list[WatchedEntry], upto: int | None = None) -> tuple[list[FoundFire], int]:
        """First start on an existing store: the recent history of each watched task name, then go live. The
        cursor returned stops below a row that waits (`_waits`): the next scan looks at it again."""
        if upto is None:
            top = self.db.execute_sql("SELECT MAX(id) FROM task").fetchone()
            cursor = int(top[0] or 0) if top else 0
        else:
            cursor = upto
        matcher = FireMatcher(watched, self.redactor, self.stamped)
        p = self.db.param
        rows = []
        for name in matcher.task_names:
            rows += self.db.execute_sql(
                f"SELECT id, uuid, name, args, kwargs, sent_at, received_at, updated_at, detail FROM task "
                f"WHERE name = {p} AND id <= {p} ORDER BY id DESC LIMIT {BACKFILL_PER_TASK}",
                (name, cursor)).fetchall()
        now, names = time.time(), matcher.task_names
        held = {row[0] for row in rows if _waits(row[2], row[7], row[5], names, now)}
        ready = [row for row in rows if row[0] not in held]
        return self._fires(matcher, ready), min(held) - 1 if held else cursor

    def _scan(self, watched: list[WatchedEntry], cursor: int, now: float) -> tuple[list[FoundFire], int]:
        # Ids and names first: the arguments (up to max_args_size each) are read only for the watched names.
        p = self.db.param
        heads = self.db.execute_sql(
            f"SELECT id, name, updated_at, sent_at FROM task WHERE id > {p} ORDER BY id LIMIT {SCAN_LIMIT}",
            (cursor,)).fetchall()
        if not heads:
            return [], cursor
        matcher = FireMatcher(watched, self.redactor, self.stamped)
        names = matcher.task_names
        waiting = {r[0] for r in heads if _waits(r[1], r[2], r[3], names, now)}
        new_cursor = min(waiting) - 1 if waiting else heads[-1][0]
        ids = [r[0] for r in heads if r[1] in names and r[0] not in waiting]
        rows = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows += self.db.execute_sql(
                f"SELECT id, uuid, name, args, kwargs, sent_at, received_at, updated_at, detail FROM task "
                f"WHERE id IN ({', '.join([p] * len(chunk))})", chunk).fetchall()
        return self._fires(matcher, rows), new_cursor

    def _fires(self, matcher: FireMatcher, rows: list[tuple]) -> list[FoundFire]:
        fires = []
        # Stamped fires first: an entry that has one matches no unstamped task from then on.
        stamped_rows = [(row, *stamp_of(row[8])) for row in rows]
        stamped_rows.sort(key=lambda item: item[1] is None)
        for (task_id, uuid, name, args, kwargs, sent_at, received_at, updated_at, _), stamp, due in stamped_rows:
            keys = matcher.entries_for(name, args, kwargs, stamp)
            if not keys:
                continue
            sender = self._sender(task_id)
            at = sent_at or received_at or updated_at
            fires += [FoundFire(key, uuid, at, sender, due) for key in keys]
        return fires

    def _sender(self, task_id: int) -> str | None:
        p = self.db.param
        row = self.db.execute_sql(
            f"SELECT hostname, pid FROM task_event WHERE task_id = {p} AND type = 'task-sent' ORDER BY seq "
            f"LIMIT 1", (task_id,)).fetchone()
        if not row or not row[0]:
            return None
        return f"{row[0]}:{row[1]}" if row[1] is not None else str(row[0])

    # -- liveness --------------------------------------------------------------------------------------
    def _ping_beat(self) -> list[str]:
        """Nodes other than known workers that answer `ping`: beat with remote control on (celerybeat@host)."""
        try:
            replies = broadcasts.broadcast(self.app, "ping", reply=True, timeout=PING_TIMEOUT) or []
        except Exception as exc:  # noqa: BLE001 - no answer is evidence only once beat has answered before
            log.debug("beat ping failed: %s", exc)
            return []
        workers = self.known_workers()
        nodes = [name for reply in replies for name in reply]
        unknown = [n for n in nodes if not n.startswith("celerybeat@") and n not in workers]
        return sorted({*(n for n in nodes if n.startswith("celerybeat@")), *self._not_workers(unknown)})

    def _not_workers(self, nodes: list[str]) -> list[str]:
        """Of nodes that answered `ping` but are not stored workers, those that are beat under a name of its own
        (`beat -n`): beat answers only `ping`, a worker also `stats`. Without this, a worker the store has not
        heard of yet (the UI started beside a running cluster) was taken for beat, and beat judged down."""
        if not nodes:
            return []
        try:
            replies = broadcasts.broadcast(self.app, "stats", reply=True, timeout=PING_TIMEOUT,
                                           destination=nodes) or []
        except Exception as exc:  # noqa: BLE001 - unconfirmed: claim none of them is beat
            log.debug("beat: stats to %s failed: %s", nodes, exc)
            return []
        answered = {name for reply in replies for name in reply}
        return [n for n in nodes if n not in answered]



def watch_loop(app: Celery, db: Database, writer: Any, redactor: Redactor, settings: Any, *,
               stop: threading.Event, connected: Callable[[], bool]) -> None:
    """Run passes every `beat_interval` seconds during this collector term (webui.collector.service)."""
    sources = SourceSet(app, settings, app_given=settings.app is not None)
    watcher = BeatWatcher(app, db, redactor, sources, ping=settings.beat_ping,
                          known_workers=lambda: _known_workers(db))
    log.info("beat watcher: reading %s", ", ".join(sources.names) or "no schedule source")
    next_at = 0.0
    try:
        while not stop.is_set() and writer.is_alive():
            if time.time() >= next_at:
                next_at = time.time() + settings.beat_interval
                try:
                    found = watcher.run_pass()
                    if not connected():
                        found.pong_nodes = None  # no broker: no ping, and no answer means nothing
                    writer.put_beat_pass(found)
                except Exception as exc:  # noqa: BLE001 - the page says how old the last pass is
                    log.warning("beat watcher pass failed: %s", exc)
                    discard_connection(db)  # a connection that died mid-pass must not serve the next one
            stop.wait(min(0.5, settings.beat_interval))
    finally:
        sources.close()


def _waits(name: str | None, updated_at: float | None, sent_at: float | None, watched_names: set[str],
           now: float) -> bool:
    """Whether a task row is looked at again next pass: its name is not known yet (its task-started came
    first), or it is a watched task's whose task-sent record is not stored yet."""
    if name is None:
        return (updated_at or 0) > now - NAME_WAIT
    return name in watched_names and sent_at is None and (updated_at or 0) > now - SENT_WAIT


def _known_workers(db: Database) -> set[str]:
    return {row[0] for row in db.execute_sql("SELECT hostname FROM worker").fetchall()}
