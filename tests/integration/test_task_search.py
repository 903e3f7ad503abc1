"""Searching through the index finds exactly what the table walk finds, whatever the index has caught up with.

SQLite and PostgreSQL. The rows of tests/integration/test_task_list_queries.py, some with hostile text (`%`,
`_`, quotes, FTS operators), are indexed fully or up to the middle, then changed the way the writer changes
them (a finished task rerun, a failure that succeeds later), so every source of candidates is exercised: the
index, the unfinished tasks, the queue, and the tasks above the high-water mark. Then the real writer and
retention: a task is found while it runs, found through the index once it has finished, and gone when pruned.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from werkzeug.datastructures import MultiDict

from tests.integration.test_task_list_queries import NOW, expected, make_rows
from tests.support.services import create_database, drop_database
from tests.support.store import close_database
from tests.support.waiting import wait_for
from webui.collector.merge import TaskState
from webui.collector.writer import CollectorStats, Writer
from webui.privacy import Redactor
from webui.store import retention, task_list, task_search
from webui.store.database import bind_models, is_sqlite, open_database
from webui.store.schema import upgrade
from webui.task_filters import TaskFilter, parse

HOSTILE = "he said \"NEAR(x y)\" AND *star* 50%_off 'quoted'"
CHANGED = {40: ("SUCCESS", "'changed-text 1'"), 41: ("STARTED", None), 42: ("FAILURE", None)}


def search_rows() -> list[dict]:
    rows = make_rows(3000)
    for row in rows:
        if row["id"] % 211 == 0:
            row["args"] = f"({row['id']}, {HOSTILE!r})"
        if row["id"] in CHANGED:
            row.update(state="SUCCESS", result="'old-text'", exception=None, runtime=2.0,
                       succeeded_at=row["received_at"] + 2, failed_at=None)
    return rows


@pytest.fixture
def store(db: Any) -> Any:
    """The migrated, connected database (conftest's `db`), under the name these tests read it by."""
    return db


def insert(db, rows: list[dict]) -> None:
    columns = list(rows[0])
    p = db.param
    with db.atomic():
        db.cursor().executemany(f"INSERT INTO task ({', '.join(columns)}) VALUES ({', '.join([p] * len(columns))})",
                                [[row[c] for c in columns] for row in rows])


def index_up_to(db, mark: int | None) -> task_search.Indexer:
    indexer = task_search.Indexer(db, step_rows=(500, 500))
    indexer.start()
    assert indexer.enabled
    while (mark is None or indexer.mark < mark) and indexer.step():
        pass
    return indexer


def change_like_the_writer(db, indexer: task_search.Indexer, rows: list[dict]) -> None:
    """Rows 40-42 (below the mark) change as a batch would change them, through the writer's own queueing."""
    by_id = {row["id"]: row for row in rows}
    before_states, after_states = [], []
    for task_id, (new_state, result) in CHANGED.items():
        row = by_id[task_id]
        fields = {k: row[k] for k in ("id", "state", "args", "kwargs", "result", "exception")}
        before_states.append(TaskState(uuid=row["uuid"], **fields))
        row.update(state=new_state, result=result, exception="ValueError('Boom')" if new_state == "FAILURE" else None)
        after_states.append(TaskState(uuid=row["uuid"], **{**fields, "state": new_state, "result": result,
                                                           "exception": row["exception"]}))
    before = indexer.before(before_states)
    p = db.param
    with db.atomic():
        for s in after_states:
            db.execute_sql(f"UPDATE task SET state = {p}, result = {p}, exception = {p} WHERE id = {p}",
                           (s.state, s.result, s.exception, s.id))
        indexer.queue(before, after_states)


def walk(db, f: TaskFilter, budget: float = 10.0) -> list[str]:
    seen: list[str] = []
    for _ in range(1000):
        page = task_list.fetch_page(db, f, budget=budget)
        assert len(page.tasks) <= f.limit
        seen += [t.uuid for t in page.tasks]
        if page.next_cursor is None:
            return seen
        f = f.with_cursor(page.next_cursor)
    raise AssertionError("the walk does not end")


SEARCHES = [
    {"q": "user-7'"},
    {"q": "UsEr-39"},
    {"q": "100%_"},
    {"q": "%_o"},
    {"q": "\"NEAR(x"},
    {"q": "AND *star"},
    {"q": "'quoted'"},
    {"q": "*"},
    {"q": "us"},
    {"q": "no such text"},
    {"q": "changed-text"},
    {"q": "old-text"},
    {"q": "boom", "state": ["FAILURE"]},
    {"q": "user-3", "state": ["STARTED", "RECEIVED"]},
    {"q": "user-2", "name": ["proj.rare"]},
    {"q": "user-1", "sort": ["oldest"], "worker": ["w2@h"]},
    {"q": "user-1", "from": [str(NOW - 8000)], "time_field": ["finished"]},
    {"q": "user-1", "sort": ["slowest"], "runtime_min": ["5"]},
    {"q": "0%_off", "sort": ["fastest"]},
]


@pytest.mark.parametrize("mark", [None, 1500, "far behind"], ids=["indexed", "half-indexed", "far-behind"])
@pytest.mark.parametrize("args", SEARCHES, ids=[repr(s) for s in SEARCHES])
def test_every_page_of_a_search_is_what_a_full_scan_would_find(store, mark, args, monkeypatch):
    if mark == "far behind":  # more tasks above the mark than the index path takes: the walk alone
        monkeypatch.setattr(task_search, "NEWEST_MAX", 100)
        mark = 1500
    rows = search_rows()
    insert(store, rows)
    indexer = index_up_to(store, mark)
    change_like_the_writer(store, indexer, rows)
    f = parse(MultiDict({"limit": "37", **args}), NOW)

    assert walk(store, f) == expected(rows, f)
    assert walk(store, f, budget=0.0) == expected(rows, f)  # every page cut short after one chunk resumes


def test_the_index_answers_once_caught_up_and_holds_no_stale_text(store):
    rows = search_rows()
    insert(store, rows)
    indexer = index_up_to(store, None)
    change_like_the_writer(store, indexer, rows)
    index_up_to(store, None)  # the queue too

    assert indexed(store, "changed-text") == {40}
    assert indexed(store, "old-text") == set()
    assert indexed(store, "0%_off") == {r["id"] for r in rows if r["id"] % 211 == 0}
    page = task_list.fetch_page(store, parse(MultiDict({"q": "0%_off"}), NOW), budget=0.0)
    assert not page.partial and len(page.tasks) == len(expected(rows, parse(MultiDict({"q": "0%_off"}), NOW)))


def indexed(db, text: str) -> set[int]:
    """The task ids the index itself holds for `text`, as it stores them (no check against the task rows)."""
    if is_sqlite(db):
        trigrams = " AND ".join(task_search._phrase(text[i:i + 3]) for i in range(len(text) - 2))
        found = db.execute_sql("SELECT rowid FROM task_fts WHERE task_fts MATCH ?", (trigrams,))
    else:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = db.execute_sql("SELECT id FROM task_search WHERE body ILIKE %s", (pattern,))
    return {int(row[0]) for row in found.fetchall()}


# -- the writer and retention --------------------------------------------------------------------------------

def event(kind: str, uuid: str, at: float, **fields) -> dict:
    return {"type": f"task-{kind}", "uuid": uuid, "timestamp": at, "hostname": "w1@h", **fields}


def test_a_task_is_found_while_it_runs_then_through_the_index_then_gone_when_pruned(database_url):
    now = [NOW]
    db = open_database(database_url)
    upgrade(db)
    bind_models(db)
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.02, clock=lambda: now[0])
    writer.start()
    writer.leading.wait(5)

    def search(text: str, **more) -> list[str]:
        with db.connection_context():
            return [t.uuid for t in task_list.fetch_page(db, parse(MultiDict({"q": text, **more}), now[0])).tasks]

    def settled() -> bool:
        return writer.pending() == 0 and writer.search.caught_up

    try:
        writer.put_events([event("received", "old", NOW - 5, name="proj.mail", args="('needle-old',)", kwargs="{}"),
                           event("succeeded", "old", NOW - 4, result="'done'", runtime=1.0)], NOW)
        writer.put_events([event("received", "t1", NOW, name="proj.mail", args="('needle-abc', \"AND\")",
                                 kwargs="{'to': '50%_x'}"), event("started", "t1", NOW + 1)], NOW)
        wait_for(settled, message="the writer did not store and index the tasks")
        assert search("needle-abc") == ["t1"]  # running, first seen just now: above the mark, walked
        assert search("needle-abc", state="SUCCESS") == []
        assert search("needle") == ["t1", "old"]

        writer.put_events([event("succeeded", "t1", NOW + 2, result="'found-xyz'", runtime=1.0)], NOW + 2)
        wait_for(settled, message="the writer did not index the finished task")
        with db.connection_context():
            t1 = db.execute_sql("SELECT id FROM task WHERE uuid = 't1'").fetchone()[0]
            assert indexed(db, "found-xyz") == {t1} and indexed(db, "needle-abc") == {t1}
            assert db.execute_sql("SELECT COUNT(*) FROM task_search_queue").fetchone()[0] == 0
        assert search("found-xyz") == ["t1"]
        assert search("found-xyz", state="SUCCESS", name="proj.mail") == ["t1"]
        assert search("found-xyz", state="FAILURE") == []
        assert search("50%_x") == ["t1"] and search("\"AND\"") == ["t1"] and search("fo") == ["t1"]
    finally:
        writer.stop()

    with db.connection_context():
        outcome = retention.prune(db, retention.Retention(tasks=1), now[0] + 2 * 86_400, pause=0)
        assert outcome.by_table()["task"] == 1  # the oldest; the newest task is never pruned
        old = indexed(db, "needle-old")
        assert old == set()
        assert search("needle") == ["t1"]
    close_database(db)


def test_a_database_without_the_index_searches_by_walking(store):
    rows = search_rows()
    insert(store, rows)
    task_search._available[id(store)] = (time.monotonic(), False)
    try:
        f = parse(MultiDict({"q": "user-7'"}), NOW)
        assert walk(store, f) == expected(rows, f)
    finally:
        task_search._available.pop(id(store), None)


def test_without_the_privilege_to_create_pg_trgm_the_store_starts_and_searches_by_walking(postgres_admin, caplog):
    """A database user who may not create extensions: the upgrade and the collector's start log why, once,
    and go on; searching walks the table."""
    url = create_database(postgres_admin)
    role = f"webui_plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:  # as the admin, inside the new database
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    parts = urlsplit(url)
    db = open_database(urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}")))
    task_search._warned.clear()
    try:
        with caplog.at_level(logging.WARNING):
            upgrade(db)  # no CREATE on the database: pg_trgm is refused, the migration goes on
            bind_models(db)
            with db.connection_context():
                indexer = task_search.Indexer(db)
                indexer.start()
                rows = search_rows()
                insert(db, rows)
                f = parse(MultiDict({"q": "user-7'"}), NOW)
                assert not indexer.enabled and not task_search.available(db)
                assert walk(db, f) == expected(rows, f)
        refusals = [r.getMessage() for r in caplog.records if "pg_trgm" in r.getMessage()
                    or "search index not created" in r.getMessage()]
        assert any("search index not created" in m and "permission denied" in m for m in refusals)
        assert sum("CREATE EXTENSION pg_trgm" in m for m in refusals) == 1  # the collector says it once
    finally:
        close_database(db)
        task_search._available.pop(id(db), None)
        drop_database(url, postgres_admin)
        with psycopg.connect(postgres_admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_rare_text_is_counted_exactly_through_the_index_where_the_walk_would_stop_short(store):
    rows = search_rows()
    insert(store, rows)
    index_up_to(store, None)
    f = parse(MultiDict({"q": "0%_off"}), NOW)
    matching = len(expected(rows, f))

    counted = task_list.count_matching(store, f, budget=0.0)  # the walk would stop after its first chunk

    assert (counted.count, counted.exact, counted.capped) == (matching, True, False)


def test_an_export_reads_every_match_through_the_index(store, caplog, monkeypatch):
    monkeypatch.setattr(task_search, "CHUNKS", (5, 10))  # many chunks a page, as on a big store
    monkeypatch.setattr(task_search, "WINDOWS", (100, 200))
    rows = search_rows()
    insert(store, rows)
    index_up_to(store, None)
    f = parse(MultiDict({"q": "user-7'"}), NOW)
    with caplog.at_level(logging.WARNING):
        exported = [t.uuid for t in task_list.iter_all(store, f, chunk=7)]  # no budget: every page to the end
    assert exported == expected(rows, f)
    assert not [r for r in caplog.records if "walking the table instead" in r.getMessage()]
