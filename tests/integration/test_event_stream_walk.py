"""A filtered events page walks the stream in bounded chunks, and following its pages gives exactly the rows a
plain filter over every event would, in order: when the time budget cuts a page short it says where it stopped,
and the next page goes on from there, skipping and repeating nothing (worker transitions included)."""
from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest

from tests.support.store import close_database
from webui.store import event_queries
from webui.store.database import bind_models, open_database
from webui.store.event_queries import EventFilter, count_newer, newer, page
from webui.store.schema import upgrade

NOW = 1_800_000_000.0
TYPES = ["task-sent", "task-received", "task-started", "task-succeeded", "task-failed"]
HOSTS = ["w1@h", "w2@h", "gen1@client"]


@pytest.fixture
def stream(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple]]:
    """~1,500 task events over 300 tasks (ties on `received` included) and 40 worker transitions; yields the
    whole stream as (cursor, type, hostname, task name) rows."""
    monkeypatch.setattr(event_queries, "CHUNKS", (7, 13, 29))
    db = open_database(database_url)
    upgrade(db)
    bind_models(db)
    rng = random.Random(5)
    tasks, events, rows = [], [], []
    for task_id in range(1, 301):
        name = "proj.rare" if task_id % 61 == 0 else rng.choice(["proj.add", "proj.mail"])
        tasks.append((task_id, f"task-{task_id}", name, "SUCCESS", NOW, 0, 0, 0, 0, 0, 0, 0, 1, 5))
        for seq in range(rng.randrange(3, 7)):
            received = NOW + task_id * 2 + (seq // 2)  # pairs of events share a received time
            kind, host = rng.choice(TYPES), rng.choice(HOSTS)
            events.append((task_id, seq, kind, received - 0.5, received, host))
            rows.append((event_queries.Cursor(received, event_queries.TASK_RANK, task_id, seq), kind, host, name))
    p = db.param
    with db.connection_context():
        with db.atomic():
            db.cursor().executemany(
                "INSERT INTO task (id, uuid, name, state, updated_at, retries, attempt, delivery, rank, "
                "started_attempt, started_delivery, starts, executions, event_count) "
                f"VALUES ({', '.join([p] * 14)})", tasks)
            db.cursor().executemany(
                f"INSERT INTO task_event (task_id, seq, type, timestamp, received, hostname) "
                f"VALUES ({', '.join([p] * 6)})", events)
            for host in HOSTS[:2]:
                db.execute_sql("INSERT INTO worker (hostname, online, first_seen, last_seen) "
                               f"VALUES ({p}, {p}, {p}, {p})", (host, True, NOW, NOW))
            for i in range(40):
                host_id, at = 1 + i % 2, NOW + rng.randrange(0, 620)
                db.execute_sql(f"INSERT INTO worker_event (worker_id, online, at, reason) VALUES ({p}, {p}, {p}, {p})",
                               (host_id, i % 3 != 0, float(at), "heartbeat"))
            for event_id, host_id, online, at in db.execute_sql("SELECT id, worker_id, online, at FROM worker_event"):
                rows.append((event_queries.Cursor(at, event_queries.WORKER_RANK, event_id),
                             "worker-online" if online else "worker-offline", HOSTS[host_id - 1], None))
        yield sorted(rows, reverse=True)
    close_database(db)


def expected(stream: list[tuple], f: EventFilter) -> list[event_queries.Cursor]:
    return [cursor for cursor, kind, host, name in stream
            if (not f.types or kind in f.types) and (f.task_name is None or name == f.task_name)
            and (f.hostname is None or host == f.hostname)
            and (cursor.rank == event_queries.TASK_RANK or f.wants_worker_events())]


def walk_pages(f: EventFilter, budget: float, limit: int = 20) -> tuple[list[event_queries.Cursor], int]:
    """Every row through the pages' own links: older after a full page, `resume` after a cut-short one."""
    seen, before, cut_short = [], None, 0
    for _ in range(10_000):
        result = page(f, before=before, limit=limit, budget=budget)
        seen += [row.cursor for row in result.rows]
        if not result.more:
            return seen, cut_short
        cut_short += result.resume is not None
        before = result.resume or result.rows[-1].cursor
    raise AssertionError("the pages never ended")


FILTERS = [
    EventFilter(),
    EventFilter(types=frozenset({"task-failed"})),
    EventFilter(types=frozenset({"task-failed", "worker-offline"})),
    EventFilter(task_name="proj.rare"),
    EventFilter(task_name="proj.never"),
    EventFilter(hostname="w2@h"),
    EventFilter(types=frozenset({"task-started"}), hostname="w1@h", task_name="proj.mail"),
]


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: repr(f)[12:60])
def test_pages_cut_short_by_the_budget_resume_without_skipping_or_repeating(stream, f) -> None:
    want = expected(stream, f)

    seen, cut_short = walk_pages(f, budget=0.0)  # the walk stops after every chunk

    assert seen == want
    if event_queries._walked(f) and len(want) < len(stream) // 2:
        assert cut_short > 0  # rare rows: pages came back short, and said where to go on


def test_with_time_enough_a_page_is_full_and_never_cut_short(stream) -> None:
    f = EventFilter(task_name="proj.rare")
    result = page(f, limit=5, budget=60.0)

    assert [row.cursor for row in result.rows] == expected(stream, f)[:5]
    assert result.resume is None and result.more


def test_the_live_fragment_and_the_counter_are_bounded_too(stream) -> None:
    f = EventFilter(hostname="w1@h")
    want = expected(stream, f)
    after = want[40]

    assert [row.cursor for row in newer(f, after, limit=100, budget=60.0).rows] == want[:40]
    assert count_newer(f, after, budget=60.0) == (40, True)
    counted, complete = count_newer(f, None, budget=0.0)
    assert not complete and 0 < counted < len(want)
    assert count_newer(f, None, cap=5, budget=60.0) == (5, True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_page_says_where_it_stopped_and_links_on_from_there(stream, database_url, monkeypatch) -> None:
    from webui.app import create_app
    from webui.settings import default_settings

    monkeypatch.setattr(event_queries, "BUDGET", 0.0)
    client = create_app(default_settings(database=database_url), start_collector=False).test_client()

    body = client.get("/events?task=proj.never").get_data(as_text=True)

    assert "No events match these filters among those searched so far" in body
    assert 'id="events-partial"' in body and "Keep searching older events" in body
    link = re.search(r'id="events-older"[^>]*href="([^"]+)"', body).group(1).replace("&amp;", "&")
    assert "before=t~" in link and "task=proj.never" in link
    assert client.get(link).status_code == 200
