"""The beat pages from a store filled as the beat watcher fills it: each entry's state with its reason, beat's
liveness and the sources, an entry's definition and fires, removed entries, hostile values as text, and the
overview's banner when beat looks down or an entry is missed. On SQLite and PostgreSQL."""
from __future__ import annotations

import re
import time

import pytest
from markupsafe import escape

from tests.support.beat_store import HOSTILE, BeatStore, crontab, fill_board, interval
from tests.support.store import close_database
from webui.app import create_app
from webui.settings import default_settings
from webui.store.database import open_database
from webui.store.schema import upgrade


@pytest.fixture
def client(database_url):
    """`client()`: a test client of the pages on `database_url`, no collector (the store is the test's)."""
    apps = []

    def make():
        db = open_database(database_url)
        upgrade(db)
        close_database(db)
        apps.append(create_app(default_settings(broker="memory://", database=database_url), start_collector=False))
        return apps[-1].test_client()

    yield make
    for app in apps:
        close_database(app.config["WEBUI_DATABASE"])


def get(client, path: str, **kwargs) -> str:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def row_of(body: str, name: str) -> str:
    rows = re.findall(r"<tr class=\"beat-row-[^\"]*\">.*?</tr>", body, re.DOTALL)
    matching = [r for r in rows if f">{escape(name)}</a>" in r]
    assert matching, f"no row for {name!r}"
    return matching[0]


def test_each_entry_shows_its_state_with_the_reason_and_its_recent_fires(database_url, client):
    ids = fill_board(database_url)
    body = get(client(), "/beat")
    on_time, late, missed = row_of(body, "sync-invoices"), row_of(body, "refresh-rates"), row_of(body, "nightly-report")
    assert 'class="beat-state beat-state-on-time"' in on_time and ">on time<" in on_time
    assert 'class="beat-state beat-state-late"' in late and "past its 2 min 00 s grace" in late
    assert "missed ×3" in missed and "3 slots passed" in missed
    assert "At 00:00" in missed and "UTC (the app's timezone)" in missed
    # The strip: one square per recent fire, oldest first, each linking to its task; the last outcome too.
    squares = re.findall(r'<a class="fire fire-(\w+)" href="/task/([^"]+)"', on_time)
    assert len(squares) == 12 and [c for c, _ in squares].count("bad") == 1 and squares[-1][0] == "ok"
    assert re.search(r'<a class="outcome" href="/task/[^"]+"[^>]*><span class="badge state-success">', on_time)
    assert re.search(r'class="badge state-failure"', missed)
    # Drift and "too often" are warnings beside a state that is otherwise fine, with their reason.
    drift = row_of(body, "warm-cache")
    assert "beat-state-on-time" in drift
    assert re.search(r'class="beat-warning" title="The recent fires all landed late[^"]*1 min 30 s', drift)
    assert ">drift +1 min 30 s<" in drift
    too_often = row_of(body, "cleanup-sessions")
    assert 'title="fires come from 2 senders (beat-a@web-1:101, beat-b@web-2:202): two beat processes?"' in too_often
    assert "beat-state-disabled" in row_of(body, "paused-export") and "by the scheduler's record" in body
    assert "beat-state-waiting" in row_of(body, HOSTILE)
    assert f'href="/beat/{ids["late"]}"' in late


def test_beat_liveness_and_the_sources_read_are_above_the_table(database_url, client):
    fill_board(database_url)
    body = get(client(), "/beat")
    assert 'class="panel beat-liveness beat-liveness-up"' in body and ">Beat is up</h2>" in body
    assert "Beat answers pings and fired" in body and '<code class="node">celery.beat@web-1</code>' in body
    assert "postgresql://beat:***@db/app" in body and "the app&#39;s beat_schedule" in body
    assert "Could not read it: ConnectionError: Error 111 connecting to cache:6379" in body
    assert "judged as of <time" in body and "banner-error" not in body  # fresh evidence: no stale warning


def test_a_watcher_that_stopped_makes_the_page_say_as_of_when(database_url, client):
    with BeatStore(database_url) as beat:
        entry = beat.entry("every-minute", interval(60))
        beat.fires(entry, [time.time() - 3600])
        beat.watch(time.time() - 3000)
    body = get(client(), "/beat")
    assert "The beat watcher's last pass was" in body and "nothing below is current" in body
    assert "Every state is" in body and "as of that pass" in body


def test_hostile_names_arguments_and_errors_are_text(database_url, client):
    ids = fill_board(database_url)
    pages = client()
    for path in ("/beat", f"/beat/{ids['hostile']}"):
        body = get(pages, path)
        assert "<script>alert(1)" not in body and "<img src=x" not in body, path
    detail = get(pages, f"/beat/{ids['hostile']}")
    assert detail.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5  # title, task, args, kwargs, description
    assert "Sends &lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img" in detail


def test_removed_entries_wait_in_a_collapsed_section(database_url, client):
    fill_board(database_url)
    pages = client()
    body = get(pages, "/beat")
    table, removed = body.split('<details class="panel beat-removed"', 1)
    assert "old-digest" not in table and "old-digest" in removed
    assert removed.startswith(">") and "1 no longer in their source" in removed  # closed
    assert get(pages, "/beat?removed=1").split('<details class="panel beat-removed"', 1)[1].startswith(" open>")
    assert pages.get("/beat?removed=yes").status_code == 400


def test_the_board_refreshes_from_the_same_templates_block(database_url, client):
    fill_board(database_url)
    page = get(client(), "/beat")
    assert re.search(r'id="beat-board" hx-get="/beat" hx-trigger="every 10s"', page)
    fragment = get(client(), "/beat", headers={"HX-Request": "true", "HX-Target": "beat-board"})
    assert "nightly-report" in fragment and "Beat is up" in fragment
    assert "<html" not in fragment and 'id="beat-board"' not in fragment and "beat-removed" not in fragment


def test_an_entry_page_shows_definition_status_record_and_fires(database_url, client):
    ids = fill_board(database_url)
    pages = client()
    body = get(pages, f"/beat/{ids['on_time']}")
    assert "<title>sync-invoices · Celery WebUI</title>" in body
    assert "Every 5 minutes" in body and "<dt>kind</dt><dd><code>interval</code>" in body
    assert "<dt>relative</dt><dd><code>false</code>" in body
    assert "&#34;batch&#34;: 500" in body and "&#34;priority&#34;: 5" in body and "<code>billing</code>" in body
    assert "1 min 00 s <span class=\"muted\">a fifth of the period" in body  # grace
    assert "5 min 00 s <span class=\"muted\">the shortest time" in body  # period
    fires = re.findall(r"<tr>\s*<td data-label=\"Fired\">.*?</tr>", body, re.DOTALL)
    assert len(fires) == 12
    assert all('href="/task/' in f and "beat@host:4242" in f for f in fires)
    assert re.search(r'class="num">\+\d+ ms<', fires[0])  # on its slot: 300 s after the fire before it
    assert "—" in fires[-1]  # the oldest has no fire before it, and an interval has no slot
    # A django entry: the scheduler's own record, lagging, next to what the events say.
    disabled = get(pages, f"/beat/{ids['disabled']}")
    assert "<td data-label=\"Scheduler says\">41</td>" in disabled
    assert "beat's record as beat last synced it" in disabled and "every 3 min 00 s" in disabled
    assert "At 07:30, Monday through Friday" in disabled and "<dt>Enabled</dt><dd>no</dd>" in disabled
    removed = get(pages, f"/beat/{ids['removed']}")
    assert "beat-state-removed" in removed and "no longer in its source" in removed


def test_drift_and_duplicate_fires_are_explained_on_the_entry_page(database_url, client):
    ids = fill_board(database_url)
    pages = client()
    drift = get(pages, f"/beat/{ids['drift']}")
    assert "Off schedule by 1 min 30 s." in drift and "It still runs, so it is not late" in drift
    too_often = get(pages, f"/beat/{ids['too_often']}")
    assert "Fires more often than scheduled:" in too_often and "two beat processes?" in too_often
    assert "40.0 s early" in too_often  # each fire 20 s after the one before, against a 60 s interval


def test_an_unknown_entry_is_a_404_page(database_url, client):
    fill_board(database_url)
    pages = client()
    for path in ("/beat/999999", f"/beat/{'9' * 40}"):
        response = pages.get(path)
        assert response.status_code == 404, path
        assert "Unknown beat entry" in response.get_data(as_text=True)


def test_with_no_schedule_watched_the_page_says_how_to_get_one(database_url, client):
    body = get(client(), "/beat")
    assert "No beat schedule is watched." in body
    for hint in ("celery -A proj webui", "--beat-schedule-file", "--beat-redbeat-url", "--beat-django-database",
                 "docs/beat.md"):
        assert hint in body
    assert "beat-liveness" not in body and "The beat watcher has not run yet" in body


# -- the overview's banner -------------------------------------------------------------------------------------

def test_the_overview_warns_when_an_entry_is_missed(database_url, client):
    fill_board(database_url)
    body = get(client(), "/")
    banner = re.search(r'<div class="banner banner-error" role="alert" id="beat-banner">(.*?)</div>', body, re.S)
    assert banner, "no beat banner"
    assert "1 beat entry missed:" in banner.group(1) and "<code>nightly-report</code>" in banner.group(1)
    assert 'href="/beat"' in banner.group(1) and "Beat looks down" not in banner.group(1)


def test_the_overview_warns_when_beat_stops_answering_pings(database_url, client):
    now = time.time()
    with BeatStore(database_url) as beat:
        entry = beat.entry("hourly", interval(3600))
        beat.fires(entry, [now - 600])
        beat.watch(now - 1, ping_at=now - 2, pong_at=now - 300, pong_nodes=["celery.beat@web-1"])
    body = get(client(), "/")
    assert 'id="beat-banner"' in body and "Beat looks down: beat answered remote-control pings until" in body
    assert "missed:" not in body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_overview_has_no_beat_banner_without_entries_or_problems(database_url, client):
    assert 'id="beat-banner"' not in get(client(), "/")
    with BeatStore(database_url) as beat:
        entry = beat.entry("fine", crontab(minute="*/5"))
        beat.fires(entry, [time.time() - 30])
        beat.watch(time.time() - 1)
    assert 'id="beat-banner"' not in get(client(), "/")
