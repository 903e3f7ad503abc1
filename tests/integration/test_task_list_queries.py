"""The tasks list's keyset walk returns exactly what a plain filter of every row would, page after page.

Thousands of hand-made rows on SQLite and PostgreSQL; each filter combination is checked against the same
filter written in Python over all rows, through every page, and with a budget so small that the walk stops
after each chunk: a cut-short page resumes where it stopped and nothing is skipped or repeated.
"""
from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from werkzeug.datastructures import MultiDict

from tests.support.store import close_database
from webui.store import task_list
from webui.store.database import bind_models, open_database
from webui.store.schema import upgrade
from webui.task_filters import TaskFilter, parse

NOW = 1_800_000_000.0
NAMES = ["proj.add", "proj.mail", "proj.rare", "proj.report"]
STATES = ["SUCCESS", "SUCCESS", "SUCCESS", "FAILURE", "RETRY", "STARTED", "RECEIVED"]
WORKERS = ["w1@h", "w2@h", "w3@h"]


def make_rows(count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(1, count + 1):
        name = "proj.rare" if i % 997 == 0 else rng.choice(NAMES[:2] + NAMES[3:])
        state = rng.choice(STATES)
        received = NOW - (count - i) * 10 + rng.uniform(-30, 30)  # roughly in id order, not exactly
        runtime = round(rng.uniform(0.001, 30), 3) if state in ("SUCCESS", "FAILURE") else None
        if i % 50 == 0 and runtime is not None:
            runtime = 1.5  # ties: the keyset must order by (runtime, id)
        rows.append({
            "id": i, "uuid": f"task-{i:06d}", "name": name, "state": state, "worker": rng.choice(WORKERS),
            "queue": "celery" if i % 3 else "mail", "args": f"({i}, 'user-{i % 40}')",
            "kwargs": "{'note': '100%_done'}" if i % 123 == 0 else "{}",
            "exception": "ValueError('Boom')" if state == "FAILURE" else None,
            "received_at": received, "started_at": received + 1 if state != "RECEIVED" else None,
            "succeeded_at": received + 2 if state == "SUCCESS" else None,
            "failed_at": received + 2 if state == "FAILURE" else None, "runtime": runtime,
            "updated_at": received, "retries": 0, "attempt": 0, "delivery": 0, "rank": 0, "started_attempt": 0,
            "started_delivery": 0, "starts": 0, "executions": 1, "event_count": 3,
        })
    return rows


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return make_rows(3000)


@pytest.fixture
def db(database_url: str, rows: list[dict]) -> Iterator:
    database = open_database(database_url)
    upgrade(database)
    bind_models(database)
    columns = list(rows[0])
    p = database.param
    with database.connection_context():
        with database.atomic():
            database.execute_sql("DELETE FROM task")
            database.cursor().executemany(
                f"INSERT INTO task ({', '.join(columns)}) VALUES ({', '.join([p] * len(columns))})",
                [[row[c] for c in columns] for row in rows])
        yield database
    close_database(database)


def matches(row: dict, f: TaskFilter) -> bool:
    finished = row["succeeded_at"] or row["failed_at"]
    times = {"received": row["received_at"], "started": row["started_at"], "finished": finished}
    t = times[f.time_field]
    texts = [str(row.get(c) or "").lower() for c in ("args", "kwargs", "result", "exception")]
    return all((
        not f.states or row["state"] in f.states,
        not f.names or row["name"] in f.names,
        not f.workers or row["worker"] in f.workers,
        not f.queues or row["queue"] in f.queues,
        f.after is None or (t is not None and t >= f.after),
        f.before is None or (t is not None and t < f.before),
        f.runtime_min is None or (row["runtime"] is not None and row["runtime"] >= f.runtime_min),
        f.runtime_max is None or (row["runtime"] is not None and row["runtime"] <= f.runtime_max),
        not f.search or any(f.search.lower() in text for text in texts),
        not f.by_runtime or row["runtime"] is not None,
    ))


def expected(rows: list[dict], f: TaskFilter) -> list[str]:
    chosen = [r for r in rows if matches(r, f)]
    if f.by_runtime:
        chosen.sort(key=lambda r: (r["runtime"], r["id"]), reverse=f.descending)
    else:
        chosen.sort(key=lambda r: r["id"], reverse=f.descending)
    return [r["uuid"] for r in chosen]


def walk(db, f: TaskFilter, budget: float = 10.0) -> tuple[list[str], int]:
    seen: list[str] = []
    pages = 0
    while True:
        page = task_list.fetch_page(db, f, budget=budget)
        pages += 1
        assert len(page.tasks) <= f.limit
        seen += [t.uuid for t in page.tasks]
        if page.next_cursor is None:
            return seen, pages
        f = f.with_cursor(page.next_cursor)
        assert pages < 1000, "the walk does not end"


FILTERS = [
    {},
    {"state": ["FAILURE"]},
    {"state": ["FAILURE", "RETRY"]},
    {"name": ["proj.rare"]},
    {"name": ["proj.rare", "proj.mail"], "state": ["SUCCESS"]},
    {"worker": ["w2@h"], "queue": ["mail"]},
    {"q": "user-7'"},
    {"q": "100%_"},
    {"q": "boom", "state": ["FAILURE"]},
    {"runtime_min": ["10"], "runtime_max": ["20"]},
    {"sort": ["slowest"]},
    {"sort": ["fastest"], "name": ["proj.add"]},
    {"sort": ["oldest"], "worker": ["w1@h", "w3@h"]},
    {"from": [str(NOW - 5000)], "to": [str(NOW - 1000)]},
    {"from": [str(NOW - 8000)], "time_field": ["finished"], "state": ["SUCCESS", "FAILURE"]},
    {"sort": ["slowest"], "q": "user-1", "runtime_min": ["5"]},
]


@pytest.mark.parametrize("args", FILTERS, ids=[repr(f) for f in FILTERS])
def test_every_page_of_a_filter_is_what_a_full_scan_would_find(db, rows, args):
    f = parse(MultiDict({"limit": "37", **args}), NOW)

    seen, _ = walk(db, f)

    assert seen == expected(rows, f)


@pytest.mark.parametrize("args", [
    {"q": "user-3'"}, {"state": ["FAILURE", "RETRY"], "q": "user-2"}, {"sort": ["slowest"], "q": "x"}])
def test_a_walk_cut_short_by_its_budget_resumes_without_skipping(db, rows, args):
    f = parse(MultiDict({"limit": "20", **args}), NOW)

    seen, pages = walk(db, f, budget=0.0)  # every page stops after one chunk

    assert seen == expected(rows, f)
    assert pages > 1


def test_a_budget_cut_page_says_it_is_partial_and_where_it_stopped(db):
    f = parse(MultiDict({"q": "no such text anywhere"}), NOW)

    page = task_list.fetch_page(db, f, budget=0.0)

    assert page.tasks == [] and page.partial and page.next_cursor is not None
    assert page.scanned == task_list.CHUNKS[0]


def test_new_tasks_are_counted_above_the_newest_shown(db, rows):
    f = parse(MultiDict({"state": ["FAILURE"]}), NOW)
    newest_shown = len(rows) - 300

    count, complete = task_list.count_newer(db, f, newest_shown, limit=1000)

    assert complete
    assert count == sum(1 for r in rows if r["id"] > newest_shown and r["state"] == "FAILURE")


def test_an_export_walks_every_match(db, rows):
    f = parse(MultiDict({"worker": ["w1@h"]}), NOW)

    uuids = [t.uuid for t in task_list.iter_all(db, f, chunk=100)]

    assert uuids == expected(rows, f)


def test_an_export_with_a_filter_off_the_index_walks_past_the_first_chunk(db, rows):
    f = parse(MultiDict({"worker": ["w1@h"], "runtime_min": ["29"]}), NOW)  # rare: one page, several chunks

    uuids = [t.uuid for t in task_list.iter_all(db, f, chunk=100)]

    assert uuids == expected(rows, f) and 0 < len(uuids) < 100


@pytest.mark.parametrize("args", [
    {"name": ["proj.mail"], "from": [str(int(NOW - 4000))]},
    {"name": ["proj.mail"], "from": [str(int(NOW - 9000))], "to": [str(int(NOW - 3000))]},
    {"state": ["FAILURE"], "from": [str(int(NOW - 6000))], "sort": ["slowest"]},
    {"worker": ["w2@h"], "from": [str(int(NOW + 600))]},  # nothing received yet
], ids=["since", "between", "slowest since", "empty window"])
def test_an_export_of_a_received_window_stops_where_the_window_starts(db, rows, args):
    f = parse(MultiDict(args), NOW)

    uuids = [t.uuid for t in task_list.iter_all(db, f, chunk=100)]

    assert uuids == expected(rows, f)  # received times are only roughly in id order: the floor is exact


@pytest.mark.parametrize("args", FILTERS, ids=[repr(f) for f in FILTERS])
def test_a_count_is_exactly_what_a_full_scan_would_find_below_the_cap(db, rows, args):
    f = parse(MultiDict(args), NOW)

    counted = task_list.count_matching(db, f, cap=5000, budget=10.0)

    assert (counted.count, counted.exact, counted.capped) == (len(expected(rows, f)), True, False)
    assert counted.label == f"{counted.count:,}"


@pytest.mark.parametrize("args", [{}, {"state": ["SUCCESS"]}, {"q": "user-"}, {"from": [str(NOW - 20000)]}])
def test_a_count_over_the_cap_says_so(db, rows, args):
    f = parse(MultiDict(args), NOW)
    assert len(expected(rows, f)) > 1000

    counted = task_list.count_matching(db, f, cap=1000, budget=10.0)

    assert (counted.count, counted.exact, counted.capped, counted.label) == (1000, False, True, "1,000+")


def test_a_count_out_of_time_is_a_lower_bound_and_says_so(db, rows):
    f = parse(MultiDict({"q": "user-7'"}), NOW)

    counted = task_list.count_matching(db, f, cap=5000, budget=0.0)  # stops after the first chunk

    found_in_first_chunk = sum(1 for r in rows[-task_list.CHUNKS[0]:] if matches(r, f))
    assert (counted.count, counted.exact, counted.capped) == (found_in_first_chunk, False, False)
    assert counted.label == f"at least {found_in_first_chunk:,}"
    assert len(expected(rows, f)) > found_in_first_chunk
