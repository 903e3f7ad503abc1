"""The search index over a task's args, kwargs, result and exception, how the writer keeps it, and how it is read.

What is indexed: one text per task, its four searched columns joined by newlines, in SQLite's contentless FTS5
table `task_fts` (trigram tokenizer, `detail=none`: which tasks hold each three-character sequence; no copy of
the text, no positions) or PostgreSQL's `task_search` table with a pg_trgm GIN index (migration 0013). Nothing
is indexed in the writer's batch transaction: a trigger, or indexing inline, cost 25–40% of SQLite's ingest
throughput.

Which tasks the index answers for, by two facts kept in the database:
- the high-water mark `task_search_mark.indexed_to`: every task up to that id has been indexed once;
- the queue `task_search_queue`: tasks at or below the mark whose text changed since. The writer adds a task
  there, in the same transaction as the batch that changed its text (with `old_body`, the text the index holds
  for it, on SQLite: a contentless index can only forget a text it is given again);
so every task at or below the mark that is not queued is in the index with its current text. A crash loses
nothing: the mark moves and the queue empties in the indexer's own transactions, and the queue rows are committed
with the task rows they describe. The writer never reads the index or the queue.

The indexer is a step of the writer thread (`Writer._index`), run after a batch's commit when the writer has
little waiting (and at least every few seconds), one short transaction of at most `STEP_ROWS` tasks: first the
queue (newest first), then the tasks above the mark, oldest first, moving the mark past them. It stays `LAG`
seconds behind the newest tasks, so that most tasks have finished, and are indexed once with their result,
rather than indexed while running and again when they finish. Running in the writer thread, it needs no locking:
no batch can change a task between the indexer reading it and its queue row going. Under a load the writer can
only just carry, the index falls behind and catches up when the load drops; searches stay complete meanwhile.
After the upgrade to v13 the mark is 0: the tasks already stored are indexed in the same small steps.

Retention (webui.store.retention) removes a pruned task from the index and the queue in the transaction that
deletes it (`forget`).

Searching (`search_page`): a task matches when one of its four columns contains the text (SQLite: LIKE, ASCII
case ignored; PostgreSQL: ILIKE), exactly as the table walk of webui.store.task_list decides. The index only
proposes candidates, which are checked with that same condition on the task row together with every other
filter, so it never shows a task the walk would not. In list order (by id), the candidates are what the index
matches (SQLite: the rarest few trigrams of the text ANDed, the rarest judged by how far back a few postings of
each reach, or several spread over the text when all are common; PostgreSQL: ILIKE on `task_search`), the
queued tasks, and every task above the mark (the newest `LAG` seconds, walked as before). They are read in chunks
sized to the walk's time budget, so a page that runs out of time says so and where it stopped, as the walk's pages
do. Sorted by runtime, the index serves a search with at most `MAX_UNORDERED` candidates (all read, then sorted).
The walk serves the search alone (as it did before the index) for a text shorter than three characters
(PostgreSQL: without three letters or digits in a row), for a text all of whose trigrams are common (SQLite: the
walk finds such a text within a few rows, faster than the index's candidates), while more than `NEWEST_MAX`
tasks wait above the mark (after an upgrade, or the indexer far behind), and for a runtime sort with more
candidates than `MAX_UNORDERED`.
"""
from __future__ import annotations

import collections
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from peewee import Database

from webui.store.database import is_sqlite
from webui.store.models import Task
from webui.task_filters import Cursor, TaskFilter

log = logging.getLogger(__name__)

SEPARATOR = "\n"
STEP_ROWS = (1000, 250)  # tasks per indexer transaction, idle and busy: about 20 and 5 ms of FTS5 work (SQLite)
LAG = 2.0  # seconds the indexer stays behind the newest tasks, so that most are indexed once, finished
MIN_TRIGRAM = 3
PROBE_POSTINGS = 1000  # postings read per trigram to judge how rare it is (SQLite)
MAX_PROBES = 24  # trigrams probed per search; longer texts are sampled evenly
RAREST = 3  # trigrams ANDed in the SQLite query
COMMON = 0.05  # a trigram in more than this share of the newest tasks is common
SPREAD = 8  # trigrams ANDed when every one is common
MAX_UNORDERED = 10_000  # candidates a runtime-sorted search may read and sort
NEWEST_MAX = 20_000  # tasks above the mark past which the walk serves searches alone (the indexer is far behind)
CHUNKS = (500, 2000, 8000, 20000)  # candidate ids per stream and chunk; the last repeats
WINDOWS = (100_000, 400_000, 1_600_000, 6_400_000)  # ids of the SQLite index searched per chunk; the last repeats
AVAILABLE_TTL = 60.0  # seconds a process trusts what it found out about the index
_PG_RUN = re.compile(r"[^\W_]{3}")  # pg_trgm's index serves a LIKE only with a word of three characters

_available: dict[int, tuple[float, bool]] = {}
_warned = threading.Event()
_rarest: dict[tuple[int, str], tuple[float, str, bool]] = {}


def body(args: str | None, kwargs: str | None, result: str | None, exception: str | None) -> str:
    """The one text indexed per task (the SQLite index can only remove exactly the text it was given)."""
    return SEPARATOR.join((args or "", kwargs or "", result or "", exception or ""))


# -- is there an index --------------------------------------------------------------------------------------

def prepare(db: Database) -> bool:
    """Whether this database has a search index; on PostgreSQL, create it if the migration could not (the
    extension may have been installed since). Says once per process why there is none."""
    if is_sqlite(db):
        ready = _sqlite_has_index(db)
        if not ready:
            _warn("this SQLite has no FTS5 trigram tokenizer (SQLite 3.34 or later has it)")
    else:
        ready = _pg_has_index(db)
        if not ready:
            try:
                with db.atomic():
                    db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                    db.execute_sql("CREATE TABLE IF NOT EXISTS task_search "
                                   "(id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
                    db.execute_sql("CREATE INDEX IF NOT EXISTS task_search_body ON task_search "
                                   "USING gin (body gin_trgm_ops)")
                ready = True
                log.info("search index: created the pg_trgm index on task_search")
            except Exception as exc:  # noqa: BLE001 - no privilege, no extension: search walks the table
                _warn(f"the pg_trgm extension could not be created ({str(exc).strip()}); "
                      "ask an administrator to run CREATE EXTENSION pg_trgm in this database")
    _available[id(db)] = (time.monotonic(), ready)
    return ready


def available(db: Database) -> bool:
    """Whether the index exists (known for `AVAILABLE_TTL` seconds at a time)."""
    known = _available.get(id(db))
    if known is not None and time.monotonic() - known[0] < AVAILABLE_TTL:
        return known[1]
    ready = _sqlite_has_index(db) if is_sqlite(db) else _pg_has_index(db)
    _available[id(db)] = (time.monotonic(), ready)
    return ready


def _sqlite_has_index(db: Database) -> bool:
    return db.execute_sql("SELECT 1 FROM sqlite_master WHERE name = 'task_fts'").fetchone() is not None


def _pg_has_index(db: Database) -> bool:
    row = db.execute_sql("SELECT to_regclass('task_search') IS NOT NULL AND "
                         "to_regclass('task_search_body') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _warn(reason: str) -> None:
    if not _warned.is_set():
        _warned.set()
        log.warning("search index unavailable: %s. Searching tasks walks the table instead (slower on big stores).",
                    reason)


def read_mark(db: Database) -> int:
    row = db.execute_sql("SELECT indexed_to FROM task_search_mark WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


# -- the writer's side --------------------------------------------------------------------------------------

Snapshot = dict[int, tuple[str | None, str | None, str | None, str | None]]


class Indexer:
    """The writer thread's handle on the index: what to queue in a batch, and the indexing steps between."""

    def __init__(self, db: Database, step_rows: tuple[int, int] = STEP_ROWS, lag: float = LAG) -> None:
        self.db = db
        self.sqlite = is_sqlite(db)
        self.step_rows = step_rows
        self.lag = lag
        self.enabled = False
        self.mark = 0
        self.caught_up = False  # the last step found nothing to do, and nothing came since
        self._fresh: collections.deque[tuple[int, float]] = collections.deque()  # (first new id, when), per batch

    def start(self) -> None:
        """Called by the writer once it leads, inside its connection. Never fails: without an index, searching
        walks the table."""
        try:
            self.enabled = prepare(self.db)
            self.mark = read_mark(self.db)
        except Exception as exc:  # noqa: BLE001 - e.g. a schema older than v13: ingest must go on regardless
            self.enabled = False
            _warn(f"its tables could not be read ({exc})")

    def before(self, states: Iterable[Any]) -> Snapshot:
        """What the index may hold for these task states, taken before a batch's events are merged into them."""
        if not self.enabled:
            return {}
        mark = self.mark
        return {s.id: (s.args, s.kwargs, s.result, s.exception) for s in states if s.id is not None and s.id <= mark}

    def queue(self, before: Snapshot, changed: Iterable[Any], *, new: Sequence[Any] = ()) -> None:
        """In the batch's transaction: queue the tasks at or below the mark whose text the batch changed.
        `new`: the tasks the batch made (above the mark), for the indexer's lag."""
        if new:
            self.caught_up = False
            self._fresh.append((min(s.id for s in new), time.monotonic()))
        rows = stale(before, changed, old_bodies=self.sqlite)
        if not rows:
            return
        self.caught_up = False
        if self.sqlite:
            # OR IGNORE: a task already queued keeps the old_body that says what the index holds for it.
            self.db.cursor().executemany(
                "INSERT OR IGNORE INTO task_search_queue (task_id, old_body) VALUES (?, ?)", rows)
        else:
            _pg(self.db, "INSERT INTO task_search_queue (task_id, old_body) SELECT * FROM unnest(%s::int[], "
                         "%s::text[]) ON CONFLICT (task_id) DO NOTHING", ([r[0] for r in rows], [r[1] for r in rows]))

    def step(self, busy: bool = False) -> int:
        """One transaction: reindex queued tasks, then index tasks above the mark; returns the tasks handled.
        `busy`: events are waiting, so take a small step."""
        if not self.enabled:
            return 0
        db, limit = self.db, self.step_rows[1 if busy else 0]
        p = db.param
        mark = self.mark
        with db.atomic():
            queued = db.execute_sql(f"SELECT task_id, old_body FROM task_search_queue ORDER BY task_id DESC "
                                    f"LIMIT {int(limit)}").fetchall()
            if queued:
                self._reindex(queued)
            swept = []
            newest = self._sweep_limit()
            if len(queued) < limit:
                until, params = ("", [mark]) if newest is None else (f" AND id <= {p}", [mark, newest])
                swept = db.execute_sql(
                    f"SELECT id, args, kwargs, result, exception FROM task WHERE id > {p}{until} ORDER BY id "
                    f"LIMIT {int(limit) - len(queued)}", params).fetchall()
                if swept:
                    self._insert(swept)
                    mark = int(swept[-1][0])
                    db.execute_sql(f"UPDATE task_search_mark SET indexed_to = {p} WHERE id = 1", (mark,))
        self.mark = mark
        self.caught_up = not queued and not swept and newest is None
        return len(queued) + len(swept)

    def _sweep_limit(self) -> int | None:
        """The newest task id the sweep may reach now: those first seen `lag` seconds ago (None: all)."""
        fresh, cutoff = self._fresh, time.monotonic() - self.lag
        while len(fresh) > 1 and fresh[1][1] <= cutoff:
            fresh.popleft()
        if fresh and fresh[0][1] <= cutoff:
            fresh.popleft()  # its tasks are old enough; the next batch's are not (or there is none)
        return fresh[0][0] - 1 if fresh else None

    def _reindex(self, queued: list[tuple[int, str | None]]) -> None:
        db = self.db
        ids = [int(task_id) for task_id, _ in queued]
        if self.sqlite:
            old = [(task_id, text) for task_id, text in queued if text is not None]
            if old:
                db.cursor().executemany("INSERT INTO task_fts (task_fts, rowid, body) VALUES ('delete', ?, ?)", old)
            rows = db.execute_sql("SELECT id, args, kwargs, result, exception FROM task WHERE id IN "
                                  "(SELECT value FROM json_each(?))", (json.dumps(ids),)).fetchall()
            self._insert(rows)
            db.execute_sql("DELETE FROM task_search_queue WHERE task_id IN (SELECT value FROM json_each(?))",
                           (json.dumps(ids),))
            return
        _pg(db, "DELETE FROM task_search WHERE id = ANY(%s)", (ids,))
        _pg(db, f"INSERT INTO task_search (id, body) SELECT id, {_PG_BODY} FROM task WHERE id = ANY(%s)", (ids,))
        _pg(db, "DELETE FROM task_search_queue WHERE task_id = ANY(%s)", (ids,))

    def _insert(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Index task rows (id, args, kwargs, result, exception) that are not in the index."""
        if not rows:
            return
        if self.sqlite:
            self.db.cursor().executemany("INSERT INTO task_fts (rowid, body) VALUES (?, ?)",
                                         [(row[0], body(*row[1:5])) for row in rows])
        else:
            _pg(self.db, f"INSERT INTO task_search (id, body) SELECT id, {_PG_BODY} FROM task WHERE id = ANY(%s) "
                         "ON CONFLICT (id) DO UPDATE SET body = excluded.body", ([int(row[0]) for row in rows],))


def stale(before: Snapshot, changed: Iterable[Any], *, old_bodies: bool) -> list[tuple[int, str | None]]:
    """The queue rows for a batch: (task id, the text the index holds for it when `old_bodies`) for each task at
    or below the mark (in `before`) whose text the batch changed. A task above the mark is not queued: the
    indexer has not read it yet and will index it as it then is."""
    rows: list[tuple[int, str | None]] = []
    for s in changed:
        was = before.get(s.id)
        if was is not None and was != (s.args, s.kwargs, s.result, s.exception):
            rows.append((s.id, body(*was) if old_bodies else None))
    return rows


_PG_BODY = "concat_ws(E'\\n', COALESCE(args, ''), COALESCE(kwargs, ''), COALESCE(result, ''), COALESCE(exception, ''))"


def catch_up(db: Database, *, on_step: Callable[[int, int], None] | None = None) -> int:
    """Index everything not indexed yet, step after step (benchmarks, tests); returns the tasks handled."""
    indexer = Indexer(db, step_rows=(2000, 2000), lag=0.0)
    indexer.start()
    total = 0
    while indexer.enabled:
        handled = indexer.step()
        if not handled:
            break
        total += handled
        if on_step is not None:
            on_step(total, indexer.mark)
    return total


# -- retention's side ---------------------------------------------------------------------------------------

def forget(db: Database, deleted: Sequence[tuple[Any, ...]]) -> None:
    """In the transaction that deleted these tasks, (id, args, kwargs, result, exception) each as it was: take
    them out of the index and the queue."""
    if not deleted or not available(db):
        return
    ids = [int(row[0]) for row in deleted]
    if not is_sqlite(db):
        _pg(db, "DELETE FROM task_search WHERE id = ANY(%s)", (ids,))
        _pg(db, "DELETE FROM task_search_queue WHERE task_id = ANY(%s)", (ids,))
        return
    mark = read_mark(db)
    indexed = [row for row in deleted if int(row[0]) <= mark]
    if not indexed:
        return
    listed = json.dumps(ids)
    queued = dict(db.execute_sql("SELECT task_id, old_body FROM task_search_queue WHERE task_id IN "
                                 "(SELECT value FROM json_each(?))", (listed,)).fetchall())
    held = []
    for row in indexed:
        task_id = int(row[0])
        if task_id not in queued:
            held.append((task_id, body(*row[1:5])))
        elif queued[task_id] is not None:
            held.append((task_id, queued[task_id]))
    if held:
        db.cursor().executemany("INSERT INTO task_fts (task_fts, rowid, body) VALUES ('delete', ?, ?)", held)
    if queued:
        db.execute_sql("DELETE FROM task_search_queue WHERE task_id IN (SELECT value FROM json_each(?))", (listed,))


# -- searching ----------------------------------------------------------------------------------------------

def usable(db: Database, text: str | None) -> bool:
    """Whether the index can serve a search for `text` (else the walk does, alone)."""
    if not text or len(text) < MIN_TRIGRAM:
        return False
    return is_sqlite(db) or _PG_RUN.search(text) is not None


def search_page(db: Database, flt: TaskFilter, *, columns: Sequence[str], residual: tuple[str, list[Any]],
                budget: float, clock: Callable[[], float] = time.monotonic
                ) -> tuple[list[Task], Cursor | None, bool, int] | None:
    """One page of `flt` through the index: (tasks, next cursor, cut short, candidates read), or None when
    the index cannot serve this search (the walk then does). `residual`: SQL of every filter, search included,
    as the walk applies it to a row."""
    if not usable(db, flt.search):
        return None
    try:
        if not available(db):
            return None
        search = _Search(db, flt, columns, residual)
        if search.common or search.newest_beyond(NEWEST_MAX):
            return None  # the walk finds a common text fast; a long unindexed tail is the walk's job anyway
        if flt.by_runtime:
            return search.unordered()
        return search.walk(budget, clock)
    except Exception as exc:  # noqa: BLE001 - a broken index must not break the page: the walk still works
        log.warning("search index query failed (%s): walking the table instead", exc)
        return None


class _Search:
    def __init__(self, db: Database, flt: TaskFilter, columns: Sequence[str], residual: tuple[str, list[Any]]):
        self.db = db
        self.sqlite = is_sqlite(db)
        self.p = str(db.param)
        self.flt = flt
        self.text = flt.search or ""
        self.columns = ", ".join(columns)
        self.table = "task NOT INDEXED" if self.sqlite else "task"  # rows by id: the key, never another index
        self.residual, self.residual_params = residual
        self.desc = flt.descending
        self.mark = read_mark(db)
        self.common = False  # SQLite: every trigram of the text is common (see _rarest_trigrams)
        self.match = self._match() if self.mark else None

    # -- the sources of candidates, each in list order beyond `position` ----------------------------------
    def _beyond(self, column: str, position: int | None) -> tuple[str, list[Any]]:
        if position is None:
            return "", []
        return f" AND {column} {'<' if self.desc else '>'} {self.p}", [position]

    def _order(self, column: str) -> str:
        return f"{column} {'DESC' if self.desc else 'ASC'}"

    def _ids(self, sql: str, params: list[Any]) -> list[int]:
        return [int(row[0]) for row in self._execute(sql, params).fetchall()]

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        if self.sqlite:
            return self.db.execute_sql(sql, tuple(params))
        cursor = self.db.cursor()
        cursor.execute(sql, tuple(params), prepare=False)  # plan each afresh (see webui.collector.rows)
        return cursor

    def queued_ids(self, position: int | None, size: int) -> list[int]:
        beyond, params = self._beyond("task_id", position)
        return self._ids(f"SELECT task_id FROM task_search_queue WHERE 1 = 1{beyond} "
                         f"ORDER BY {self._order('task_id')} LIMIT {int(size)}", params)

    def indexed_ids(self, position: int | None, size: int, window: int | None) -> tuple[list[int], int | None]:
        """Ids the index matches beyond `position`, at most `size`, within `window` ids of it; and, when fewer
        came back, the last id that answer covers (None: the index has nothing further that way)."""
        if self.match is None:
            return [], None
        key = "rowid" if self.sqlite else "id"
        start = position if position is not None else (self.mark + 1 if self.desc else 0)
        far: int | None = None
        # PostgreSQL reads a GIN index whole whatever the id range (a bitmap, then sorted), or walks the key
        # backwards when it expects a common text: a window would only repeat the GIN read chunk after chunk.
        if window is not None and self.sqlite:
            far = start - window if self.desc else start + window
            if (self.desc and far <= 1) or (not self.desc and far >= self.mark):
                far = None
        bounds, params = f" AND {key} {'<' if self.desc else '>'} {self.p}", [start]
        if far is not None:
            bounds += f" AND {key} {'>=' if self.desc else '<='} {self.p}"
            params.append(far)
        if self.sqlite:
            sql = f"SELECT rowid FROM task_fts WHERE task_fts MATCH {self.p}{bounds}"
        else:
            sql = f"SELECT id FROM task_search WHERE body ILIKE {self.p}{bounds}"
        ids = self._ids(f"{sql} ORDER BY {self._order(key)} LIMIT {int(size)}", [self.match, *params])
        return ids, far

    def newest_beyond(self, count: int) -> bool:
        """Whether more than `count` tasks are above the mark."""
        row = self._execute(f"SELECT id FROM {self.table} WHERE id > {self.p} ORDER BY id LIMIT 1 OFFSET {int(count)}",
                            [self.mark]).fetchone()
        return row is not None

    def newest_end(self, position: int | None, size: int) -> tuple[int | None, int]:
        """The tasks above the mark (the walk's part): the id `size` rows beyond `position`, or the last one,
        and how many rows that is."""
        beyond, params = self._beyond("id", position)
        rows = self._ids(f"SELECT id FROM {self.table} WHERE id > {self.p}{beyond} ORDER BY {self._order('id')} "
                         f"LIMIT {int(size)}", [self.mark, *params])
        return (rows[-1] if rows else None), len(rows)

    # -- the match expression ---------------------------------------------------------------------------
    def _match(self) -> str | None:
        if not self.sqlite:
            pattern = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            self.common = self._pg_common(pattern)
            return pattern
        key = (id(self.db), self.text)
        cached = _rarest.get(key)
        if cached is not None and time.monotonic() - cached[0] < AVAILABLE_TTL:
            self.common = cached[2]
            return cached[1]
        expression = self._rarest_trigrams()
        if expression is not None:  # any trigrams of the text make a sound query; "in no task" may change soon
            if len(_rarest) > 256:
                _rarest.clear()
            _rarest[key] = (time.monotonic(), expression, self.common)
        return expression

    def _pg_common(self, pattern: str) -> bool:
        """Whether PostgreSQL's planner expects the text in more than COMMON of the indexed tasks (it matches
        the pattern against its statistics' sample of `task_search`)."""
        plan = self._execute("EXPLAIN (FORMAT JSON) SELECT 1 FROM task_search WHERE body ILIKE %s",
                             [pattern]).fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        rows = float(plan[0]["Plan"]["Plan Rows"])
        total = self._execute("SELECT reltuples FROM pg_class WHERE oid = 'task_search'::regclass", []).fetchone()[0]
        return bool(total and total > 0 and rows / float(total) > COMMON)

    def _rarest_trigrams(self) -> str | None:
        """The FTS5 query: the rarest few trigrams of the text ANDed (a matching task holds every one; the row
        check does the rest), or SPREAD of them from end to end when all are common. FTS5 spends its time on
        the postings of common trigrams, so they are left out. A trigram's rarity: how far back its newest
        PROBE_POSTINGS postings reach. None: a trigram is in no indexed task, so none matches."""
        folded = self.text.lower()
        trigrams = list(dict.fromkeys(folded[i:i + MIN_TRIGRAM] for i in range(len(folded) - MIN_TRIGRAM + 1)))
        if len(trigrams) > MAX_PROBES:
            step = len(trigrams) / MAX_PROBES
            trigrams = [trigrams[int(i * step)] for i in range(MAX_PROBES)]
        rarity = []
        for trigram in trigrams:
            n, oldest = self.db.execute_sql(
                "SELECT COUNT(*), MIN(rowid) FROM (SELECT rowid FROM task_fts WHERE task_fts MATCH ? "
                f"ORDER BY rowid DESC LIMIT {PROBE_POSTINGS})", (_phrase(trigram),)).fetchone()
            if n == 0:
                return None
            density = n / max(self.mark - int(oldest) + 1, n)
            rarity.append((density, trigram))
        if min(rarity)[0] > COMMON:
            self.common = True
            step = max(1, len(trigrams) // SPREAD)
            chosen = {*trigrams[::step][:SPREAD - 1], trigrams[-1]}
        else:
            chosen = {t for _, t in sorted(rarity)[:RAREST]}
        return " AND ".join(_phrase(t) for t in trigrams if t in chosen)

    # -- pages ------------------------------------------------------------------------------------------
    def walk(self, budget: float, clock: Callable[[], float]) -> tuple[list[Task], Cursor | None, bool, int]:
        """A page in id order: chunk after chunk of candidates, as far as the budget allows."""
        started = clock()
        limit = self.flt.limit
        position = self.flt.cursor.id if self.flt.cursor is not None else None
        tasks: list[Task] = []
        scanned = 0
        per_id = 0.0  # seconds one candidate costs, measured on the chunks so far
        for step in range(1_000_000):
            size = CHUNKS[min(step, len(CHUNKS) - 1)]
            if per_id > 0 and budget != float("inf"):  # no chunk may overrun what is left of the budget by much
                size = max(CHUNKS[0], min(size, int((budget - (clock() - started)) / per_id)))
            window = WINDOWS[min(step, len(WINDOWS) - 1)]
            chunk_started = clock()
            frontier, candidates, newest, count = self._chunk(position, size, window)
            scanned += count
            tasks.extend(self._rows(position, frontier, candidates, newest, limit + 1 - len(tasks)))
            if len(tasks) > limit:
                tasks = tasks[:limit]
                return tasks, Cursor(tasks[-1].id), False, scanned
            if frontier is None:
                return tasks, None, False, scanned
            position = frontier
            now = clock()
            per_id = max(per_id, (now - chunk_started) / max(count, size))  # a chunk costs at least its size
            if now - started + per_id * CHUNKS[0] >= budget:
                return tasks, Cursor(frontier), len(tasks) < limit, scanned
        raise AssertionError("unreachable")

    def _chunk(self, position: int | None, size: int, window: int) -> tuple[int | None, list[int], bool, int]:
        """The next chunk beyond `position`: where it ends (None: nothing beyond it), the candidate ids in it,
        whether it holds tasks above the mark, and how many ids were read. It ends at the nearest point that
        one source could not read past: its `size`-th id, or the index's window."""
        frontiers: list[int] = []
        queued = self.queued_ids(position, size)
        if len(queued) == size:
            frontiers.append(queued[-1])
        indexed, far = self.indexed_ids(position, size, window)
        if len(indexed) == size:
            frontiers.append(indexed[-1])
        elif far is not None:
            frontiers.append(far)
        newest_end, newest = self.newest_end(position, size)
        if newest == size and newest_end is not None:
            frontiers.append(newest_end)
        frontier = (max(frontiers) if self.desc else min(frontiers)) if frontiers else None
        chosen = {i for i in (*queued, *indexed)
                  if frontier is None or (i >= frontier if self.desc else i <= frontier)}
        # Above the mark: newest first, they come first; oldest first, only once the chunk reaches them.
        reaches_newest = newest > 0 and (self.desc or frontier is None or frontier > self.mark)
        return frontier, sorted(chosen, reverse=self.desc), reaches_newest, len(queued) + len(indexed) + newest

    def _rows(self, position: int | None, frontier: int | None, candidates: list[int], newest: bool,
              limit: int) -> list[Task]:
        """The tasks of one chunk that match every filter, in list order, at most `limit`."""
        residual = f" AND {self.residual}" if self.residual else ""
        found: list[Task] = []
        if candidates:
            listed, params = self._in(candidates)
            found += Task.raw(f"SELECT {self.columns} FROM {self.table} WHERE {listed}{residual} "
                              f"ORDER BY {self._order('id')} LIMIT {self.p}", *params, *self.residual_params, limit)
        if newest:
            beyond, params = self._beyond("id", position)
            until = ""
            if frontier is not None:
                until = f" AND id {'>=' if self.desc else '<='} {self.p}"
                params.append(frontier)
            found += Task.raw(f"SELECT {self.columns} FROM {self.table} WHERE id > {self.p}{beyond}{until}"
                              f"{residual} ORDER BY {self._order('id')} LIMIT {self.p}",
                              self.mark, *params, *self.residual_params, limit)
        found.sort(key=lambda t: t.id, reverse=self.desc)
        return found[:limit]

    def _in(self, ids: list[int]) -> tuple[str, list[Any]]:
        if self.sqlite:
            return "id IN (SELECT value FROM json_each(?))", [json.dumps(ids)]
        return "id = ANY(%s)", [ids]

    def unordered(self) -> tuple[list[Task], Cursor | None, bool, int] | None:
        """A runtime-sorted page when every candidate can be read: at most MAX_UNORDERED of them."""
        cap = MAX_UNORDERED
        _, newest = self.newest_end(None, cap + 1)
        candidates = {*self.queued_ids(None, cap + 1), *self.indexed_ids(None, cap + 1, None)[0]}
        total = newest + len(candidates)
        if total > cap:
            return None
        if not total:
            return [], None, False, 0
        parts: list[str] = []
        params: list[Any] = []
        if candidates:
            listed, params = self._in(sorted(candidates))
            parts.append(listed)
        if newest:
            parts.append(f"id > {self.p}")
            params.append(self.mark)
        where = ["runtime IS NOT NULL", "(" + " OR ".join(parts) + ")"]
        cursor = self.flt.cursor
        if cursor is not None and cursor.runtime is not None:
            where.append(f"(runtime, id) {'<' if self.desc else '>'} ({self.p}, {self.p})")
            params += [cursor.runtime, cursor.id]
        if self.residual:
            where.append(self.residual)
            params += self.residual_params
        direction = "DESC" if self.desc else "ASC"
        limit = self.flt.limit
        tasks = list(Task.raw(f"SELECT {self.columns} FROM task WHERE {' AND '.join(where)} "
                              f"ORDER BY runtime {direction}, id {direction} LIMIT {self.p}", *params, limit + 1))
        if len(tasks) > limit:
            tasks = tasks[:limit]
            return tasks, Cursor(tasks[-1].id, tasks[-1].runtime), False, total
        return tasks, None, False, total


def _phrase(text: str) -> str:
    """`text` as one FTS5 string: every character literal (AND, NEAR(, *, quotes are just text)."""
    return '"' + text.replace('"', '""') + '"'


def _pg(db: Database, sql: str, params: Sequence[Any]) -> None:
    cursor = db.cursor()
    cursor.execute(sql, tuple(params), prepare=False)
