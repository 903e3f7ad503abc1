"""The overview: its chart geometry, its queries over rollups written by the real writer, and the page itself."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.collector import test_settings as collector_settings
from tests.support.waiting import wait_for
from webui.collector.writer import CollectorStats, Writer
from webui.privacy import Redactor
from webui.store import overview_queries
from webui.store.database import bind_models, open_database
from webui.store.schema import upgrade
from webui.views.overview_charts import HEIGHT, MIN_BAR, WIDTH, nice_ceiling, stacked_bars

# -- chart geometry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (10, 10), (11, 20), (120, 200), (501, 1000)])
def test_the_top_of_the_axis_is_a_round_number_above_the_largest_column(value, ceiling):
    assert nice_ceiling(value) == ceiling


def test_bars_stack_bottom_up_scaled_to_the_round_maximum():
    chart = stacked_bars([("a", (10, 0)), ("b", (6, 4)), ("c", (0, 0))], ("ok", "bad"))
    assert chart.scale == 10 and len(chart.columns) == 3
    a, b, c = chart.columns
    assert a.x == 0 and a.width == pytest.approx(WIDTH / 3) and a.title == "a"
    (full,) = a.bars
    assert (full.y, full.height, full.css) == (0, HEIGHT, "ok")  # 10 of 10: the whole height
    ok, bad = b.bars
    assert ok.css == "ok" and ok.y + ok.height == HEIGHT and ok.height == pytest.approx(HEIGHT * 0.6)
    assert bad.css == "bad" and bad.y + bad.height == pytest.approx(ok.y) and bad.height == pytest.approx(HEIGHT * 0.4)
    assert c.bars == ()  # nothing drawn, but the column (and its hover title) is there
    assert ok.x > b.x and ok.x + ok.width < b.x + b.width  # a gap between neighbouring bars
    assert not chart.empty


def test_a_single_failure_next_to_a_busy_minute_stays_visible():
    chart = stacked_bars([("busy", (10_000, 0)), ("quiet", (0, 1))], ("ok", "bad"))
    assert chart.columns[1].bars[0].height == MIN_BAR


def test_a_chart_of_zeros_is_empty():
    assert stacked_bars([("a", (0, 0))] * 60, ("ok", "bad")).empty
    assert stacked_bars([], ("ok", "bad")).empty


# -- queries over what the writer stored --------------------------------------------------------------------


@pytest.fixture
def db(tmp_path) -> Iterator[Any]:
    database = open_database(f"sqlite:///{tmp_path}/o.sqlite3")
    upgrade(database)
    bind_models(database)
    with database.connection_context():
        yield database
    database.close()


def write(db: Any, *events: dict[str, Any]) -> None:
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.01)
    for event in events:  # received a moment after it was sent
        writer.put_events([event], event["timestamp"] + 0.5)
    writer.start()
    writer.leading.wait(5)
    wait_for(lambda: writer.pending() == 0, message="the writer never drained its buffer")
    writer.stop()


def run(uuid: str, name: str, ts: float, outcome: str = "task-succeeded", **fields: Any) -> list[dict[str, Any]]:
    return [{"type": "task-received", "uuid": uuid, "name": name, "timestamp": ts, "hostname": "w@h"},
            {"type": "task-started", "uuid": uuid, "timestamp": ts + 0.1, "hostname": "w@h"},
            {"type": outcome, "uuid": uuid, "timestamp": ts + 0.2, "hostname": "w@h", **fields}]


def test_the_windows_count_what_happened_in_them(db):
    now = time.time()
    write(db, *run("a", "add", now - 30, runtime=0.1), *run("b", "add", now - 7200, runtime=0.1),
          *run("c", "boom", now - 40, "task-failed", exception="KeyError('x')"),
          *run("d", "boom", now - 2 * 86_400, "task-failed", exception="KeyError('old')"))
    activity = overview_queries.activity(now)
    assert (activity.hour.received, activity.hour.succeeded, activity.hour.failed) == (2, 1, 1)
    assert (activity.day.received, activity.day.succeeded, activity.day.failed) == (3, 2, 1)
    assert activity.hour.success_rate == 0.5
    assert len(activity.per_minute) == 60 and len(activity.trend) == 96
    assert sum(ok for _, ok, _ in activity.per_minute) == 1 and sum(f for _, f, _ in activity.trend) == 1
    assert activity.per_minute[-1][0] == int(now // 60) * 60


def test_top_failing_names_and_exceptions_come_newest_first_and_say_when_capped(db):
    now = time.time()
    events = []
    for i in range(5):
        events += run(f"f{i}", "boom", now - 100 + i, "task-failed", exception=f"KeyError('k{i}')")
    events += run("g", "other", now - 50, "task-failed", exception="ValueError('v')")
    events += run("h", "boom", now - 50, runtime=0.3)
    write(db, *events)
    (boom, other) = overview_queries.top_failing_names(now - 86_400)
    assert (boom.name, boom.failed, boom.succeeded, other.name) == ("boom", 5, 1, "other")
    assert 0.25 <= boom.p50 <= 0.5 and boom.failure_rate == pytest.approx(5 / 6)
    summary = overview_queries.top_exceptions(now - 86_400)
    assert [(g.exception_class, g.count) for g in summary.groups] == [("KeyError", 5), ("ValueError", 1)]
    assert summary.groups[0].latest_text == "KeyError('k4')" and summary.groups[0].latest_uuid == "f4"
    assert not summary.capped and summary.read == 6
    capped = overview_queries.top_exceptions(now - 86_400, max_read=3)
    assert capped.capped and capped.read == 3
    assert [(g.exception_class, g.count) for g in capped.groups] == [("KeyError", 2), ("ValueError", 1)]


def test_the_feed_shows_the_latest_events_by_arrival(db):
    now = time.time()
    write(db, *run("a", "add", now - 5, runtime=0.1))
    feed = overview_queries.recent_events(limit=2)
    assert [(e.type, e.uuid, e.name) for e in feed] == [("task-succeeded", "a", "add"), ("task-started", "a", "add")]


def test_the_exception_query_reads_the_failed_at_index(db):
    plan = " ".join(str(row) for row in db.execute_sql(
        "EXPLAIN QUERY PLAN SELECT uuid FROM task WHERE failed_at IS NOT NULL AND failed_at >= 1 "
        "ORDER BY failed_at DESC LIMIT 1001").fetchall())
    assert "task_failed_at" in plan
    plan = " ".join(str(row) for row in db.execute_sql(
        "EXPLAIN QUERY PLAN SELECT e.type FROM task_event e JOIN task t ON t.id = e.task_id "
        "ORDER BY e.received DESC LIMIT 15").fetchall())
    assert "task_event_received" in plan


# -- the page -----------------------------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path) -> Iterator[Any]:
    from webui.app import create_app

    url = f"sqlite:///{tmp_path}/page.sqlite3"
    database = open_database(url)
    upgrade(database)
    database.close()
    app = create_app(collector_settings("redis://127.0.0.1:6379/15", url), start_collector=False)
    yield app.test_client(), app.config["WEBUI_DATABASE"]


def test_the_page_and_its_refreshable_sections_render_from_the_same_block(client):
    http, db = client
    with db.connection_context():
        write(db, *run("a", "tests.add", time.time() - 10, runtime=0.1),
              *run("b", "tests.fail", time.time() - 10, "task-failed",
                   exception="ValueError('<script>alert(1)</script>')"))
    page = http.get("/").get_data(as_text=True)
    fragment = http.get("/overview/sections").get_data(as_text=True)
    assert '<div id="overview"' in page and fragment.lstrip().startswith('<div id="overview"')
    assert 'hx-trigger="every 10s, live:overview from:body"' in fragment
    assert "<html" not in fragment and "tests.fail" in fragment
    assert "The collector is disconnected from the broker" in page  # the writer ran, no subscriber did
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert " style=" not in page  # the CSP forbids inline styles
