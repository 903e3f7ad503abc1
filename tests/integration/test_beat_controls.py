"""The beat controls against a real `celery beat` and the session's real worker: pause, resume, skip and run now,
with django-celery-beat's DatabaseScheduler and with RedBeat, seen through `webui serve`'s own store (the fires
its beat watcher matches from the task events). And, for the app's beat_schedule and the schedule file, the
buttons are there but disabled, with the reason.

Each scheduled entry fires every 4 s, a witness entry every 2 s (it shows beat kept running while the other
was paused); their arguments carry a per-test token, so other sessions' fires are not ours.
"""
from __future__ import annotations

import html
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.integration.test_auth import PASSWORD, ROLES, USERS, csrf_token, log_in
from tests.integration.test_beat_source_django import _django_settings, django_beat_database
from tests.support.beat_store import BeatStore, interval
from tests.support.processes import REPO_ROOT, LoggedProcess, child_env
from tests.support.services import create_database, drop_database
from tests.support.waiting import wait_for
from webui.app import create_app
from webui.beat import controls as beat_controls
from webui.beat.sources import SourceError
from webui.beat.sources.django_db import read_django_beat
from webui.settings import default_settings

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
PERIOD = 4.0
WITNESS_PERIOD = 2.0
TASK = "tests.celeryapp.echo"


# -- a running beat, a webui watching it, and what its store saw ---------------------------------------------


class Watched:
    """The webui server watching one beat, and the entry ids of the controlled entry and the witness."""

    def __init__(self, server: Any, beat: LoggedProcess, token: str) -> None:
        self.server, self.beat, self.token = server, beat, token
        found = wait_for(lambda: self._ids_when_firing(), timeout=45, interval=0.5,
                         message="both entries watched and fired twice")
        self.entry_id, self.witness_id = found

    def _ids_when_firing(self) -> tuple[int, int] | None:
        entries = {e["name"]: e for e in self.get("/api/v1/beat").json()["entries"]}
        ctl, witness = entries.get("ctl-every-4s"), entries.get("witness-every-2s")
        if ctl and witness and len(ctl["fires"]) >= 2 and witness["fires"]:
            return ctl["id"], witness["id"]
        return None

    def get(self, path: str) -> requests.Response:
        return requests.get(self.server.url + path, timeout=10)

    def fires(self, entry_id: int | None = None) -> list[float]:
        entry = self.get(f"/api/v1/beat/{entry_id or self.entry_id}?limit=100").json()
        return sorted(fire["at"] for fire in entry["fires"])

    def fires_after(self, since: float, entry_id: int | None = None) -> list[float]:
        return [at for at in self.fires(entry_id) if at > since]

    def api(self, action: str) -> requests.Response:
        return requests.post(f"{self.server.url}/api/v1/beat/{self.entry_id}/{action}", timeout=20)

    def page_control(self, action: str, expected: str) -> str:
        """The page's two steps: the confirmation (which must say `expected`), then the confirmed action."""
        path = f"{self.server.url}/controls/beat/{self.entry_id}/{action}"
        first = requests.post(path, data={"from": "entry"}, timeout=20)
        assert first.status_code == 200, first.text[-800:]
        assert 'id="control-confirm"' in first.text and expected in html.unescape(first.text), first.text[-1500:]
        assert 'id="control-result"' not in first.text, "nothing is done before the confirmation"
        done = requests.post(path, data={"from": "entry", "confirm": "1"}, timeout=20)
        assert done.status_code == 200, done.text[-1500:]
        return html.unescape(done.text)


def pause_resume_skip_and_run_now(watched: Watched, stored_enabled: Callable[[], bool]) -> None:
    """The same checks for every source that can store a pause and a skip."""
    # Pause: no fire while paused, and beat keeps running (the witness keeps firing).
    body = watched.page_control("pause", "Pause ctl-every-4s")
    assert "Done: paused" in body
    paused_at = time.time()
    assert stored_enabled() is False
    time.sleep(3 * PERIOD)
    assert watched.fires_after(paused_at + 1.5) == [], "fired while paused"
    assert len(watched.fires_after(paused_at + 1.5, watched.witness_id)) >= 3, "beat kept running"
    assert watched.beat.alive
    assert watched.api("pause").status_code == 409  # already paused: the API says why

    # Resume: it fires again.
    resumed = watched.api("resume")
    assert resumed.status_code == 200, resumed.text
    resumed_at = time.time()
    assert resumed.json()["enabled"] is True and stored_enabled() is True
    wait_for(lambda: watched.fires_after(resumed_at), timeout=PERIOD + 6, interval=0.3,
             message="fired again after resume")

    # Skip: the next slot passes without a fire, the one after fires.
    last = watched.fires()[-1]
    wait_for(lambda: watched.fires()[-1] > last, timeout=PERIOD + 4, interval=0.2, message="a fresh fire")
    skipped = watched.api("skip")
    assert skipped.status_code == 200, skipped.text
    skipped_at = time.time()
    slot, following = skipped.json()["skipped"], skipped.json()["next_run"]
    assert skipped_at - 0.5 <= slot <= skipped_at + PERIOD + 0.5 and following == pytest.approx(slot + PERIOD)
    wait_for(lambda: watched.fires_after(following - 1.5), timeout=following - time.time() + 6, interval=0.3,
             message="the slot after the skipped one fired")
    late_or_on_time = watched.fires_after(skipped_at)
    assert late_or_on_time and late_or_on_time[0] == pytest.approx(following, abs=1.5), \
        f"skipped {slot}, then fired at {late_or_on_time} (expected one at {following})"

    # Run now: a task with the entry's name and arguments, in the store, linked from the result.
    body = watched.page_control("run", f"Send {TASK} now")
    task_id = body.split('id="new-task"', 1)[1].split("<code>", 1)[1].split("</code>", 1)[0]
    assert f'href="/task/{task_id}"' in body
    stored = wait_for(lambda: (r := watched.get(f"/api/v1/tasks/{task_id}")).status_code == 200 and r.json(),
                      timeout=20, interval=0.3, message="the task run now stored")
    assert stored["name"] == TASK and watched.token in (stored["args"] or "")

    audit = [(e["action"], e["result"]) for e in watched.get("/api/v1/audit").json()["entries"]]
    for action in ("beat_pause", "beat_resume", "beat_skip", "beat_run"):
        assert (action, "ok") in audit


def start_beat(app: str, env: dict[str, str], log: Path) -> LoggedProcess:
    return LoggedProcess([sys.executable, "-m", "celery", "-A", app, "beat", "--max-interval", "1", "-l", "info"],
                         log, env)


# -- django-celery-beat ------------------------------------------------------------------------------------


@SQLITE_ONLY
def test_pause_resume_skip_and_run_now_with_django_celery_beat(worker, database_url, run_webui, tmp_path):
    token = f"token-{uuid.uuid4().hex[:8]}"
    beat_db = f"sqlite:///{tmp_path / 'django-beat.sqlite3'}"
    _child("fill", beat_db, token)
    env = {"WEBUI_TEST_BROKER": worker.broker_url, "WEBUI_TEST_DJANGO_DB": beat_db}
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval", "0.1",
                       "--no-enable-events", "--beat-interval", "1", "--beat-django-database", beat_db, env=env)
    server.wait_http("/healthcheck", 200, timeout=30)
    beat = start_beat("tests.beatapp_django", env, tmp_path / "beat.log")
    try:
        watched = Watched(server, beat, token)
        pause_resume_skip_and_run_now(
            watched, lambda: {e.name: e for e in read_django_beat(beat_db)}["ctl-every-4s"].enabled)
    finally:
        beat.stop()
        print(beat.log_tail())


def test_django_writes_reach_postgresql_and_a_running_beat_would_reload(postgres_admin):
    """On PostgreSQL too (timestamptz, not SQLite's text): the row, and the change marker beat polls."""
    from webui.beat.sources import django_write

    url = create_database(postgres_admin)
    try:
        django_beat_database(url)  # test_beat_source_django's tasks: every-30s is enabled, never run
        before = _child("last-update", url, "")
        django_write.set_enabled(url, "every-30s", False)
        assert {e.name: e for e in read_django_beat(url)}["every-30s"].enabled is False
        slot = time.time() + 30
        django_write.skip_slot(url, "every-30s", slot, slot + 30)
        entry = {e.name: e for e in read_django_beat(url)}["every-30s"]
        assert entry.last_run_at == pytest.approx(slot, abs=1e-3)
        after = json.loads(_child("last-update", url, ""))
        assert after["start_time"] == pytest.approx(slot + 30, abs=1e-3)
        assert after["last_update"] > (json.loads(before)["last_update"] or 0)
        with pytest.raises(SourceError, match="no periodic task named 'gone'"):
            django_write.set_enabled(url, "gone", True)
    finally:
        drop_database(url, postgres_admin)


# -- RedBeat -----------------------------------------------------------------------------------------------


@SQLITE_ONLY
def test_pause_resume_skip_and_run_now_with_redbeat(worker, database_url, run_webui, tmp_path, redis_db):
    from celery import Celery
    from celery.schedules import schedule
    from redbeat import RedBeatSchedulerEntry

    token = f"token-{uuid.uuid4().hex[:8]}"
    prefix = f"ctl-{token}:"
    env = {"WEBUI_TEST_BROKER": worker.broker_url, "WEBUI_TEST_REDBEAT_URL": redis_db,
           "WEBUI_TEST_REDBEAT_PREFIX": prefix}
    app = Celery("writer", broker=redis_db, set_as_current=False)
    app.conf.update(redbeat_redis_url=redis_db, redbeat_key_prefix=prefix, timezone="UTC")
    for name, period in (("ctl-every-4s", PERIOD), ("witness-every-2s", WITNESS_PERIOD)):
        RedBeatSchedulerEntry(name, TASK, schedule(period), args=[name, token], app=app).save()
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval", "0.1",
                       "--no-enable-events", "--beat-interval", "1", "--beat-redbeat-url", redis_db,
                       "--beat-redbeat-prefix", prefix, env=env)
    server.wait_http("/healthcheck", 200, timeout=30)
    beat = start_beat("tests.beatapp_redbeat", env, tmp_path / "beat.log")
    client = redis.Redis.from_url(redis_db)
    try:
        watched = Watched(server, beat, token)
        pause_resume_skip_and_run_now(
            watched, lambda: json.loads(client.hget(f"{prefix}ctl-every-4s", "definition"))["enabled"])
        meta = json.loads(client.hget(f"{prefix}ctl-every-4s", "meta"))
        assert meta["total_run_count"] >= 3  # RedBeat kept counting its runs through our writes
    finally:
        client.close()
        beat.stop()
        print(beat.log_tail())


# -- the app's beat_schedule and the schedule file: disabled, with the reason ---------------------------------


@SQLITE_ONLY
def test_the_app_and_file_entries_can_run_now_but_say_why_they_cannot_be_paused_or_skipped(database_url):
    with BeatStore(database_url) as beat:
        ids = {source: beat.entry(f"{source}-entry", interval(60), source=source, args=[source])
               for source in ("app", "file", "django")}
        beat.fires(ids["django"], [time.time() - 30])  # a fire seen: its next slot is known, so it can be skipped
        beat.watch(time.time())
    app = create_app(default_settings(broker="memory://", database=database_url), start_collector=False)
    client = app.test_client()
    board = client.get("/beat").get_data(as_text=True)
    for source in ("app", "file"):
        cell = board.split(f'id="beat-controls-{ids[source]}"', 1)[1].split("</td>", 1)[0]
        assert 'data-action="run" title="Run now">' in cell  # enabled: run now works for every source
        for action in ("pause", "skip"):
            assert f'data-action="{action}" disabled title="{beat_controls.IN_CODE}"' in html.unescape(cell)
        refused = client.post(f"/controls/beat/{ids[source]}/pause", data={"confirm": "1"})
        assert refused.status_code == 409 and beat_controls.IN_CODE in html.unescape(refused.get_data(as_text=True))
        api = client.post(f"/api/v1/beat/{ids[source]}/skip")
        assert api.status_code == 409 and beat_controls.IN_CODE in api.get_json()["error"]
    # The table's footnote says it once for all (each disabled button's title says it too).
    assert " ".join(html.unescape(board).split()).count(f"schedule file: {beat_controls.IN_CODE} (hover") == 1
    django_cell = board.split(f'id="beat-controls-{ids["django"]}"', 1)[1].split("</td>", 1)[0]
    assert " disabled" not in django_cell
    entry_page = client.get(f"/beat/{ids['app']}").get_data(as_text=True)
    assert f'id="beat-controls-{ids["app"]}"' in entry_page  # the entry's page writes it under its buttons
    assert f"Pause, skip the next run — {beat_controls.IN_CODE}." in html.unescape(entry_page)
    assert client.post("/controls/beat/999999/run").status_code == 404


@SQLITE_ONLY
def test_the_beat_controls_need_the_operator_role_and_the_csrf_token(database_url, run_webui):
    with BeatStore(database_url) as beat:
        entry_id = beat.entry("nightly", interval(86400), source="app")
        beat.watch(time.time())
    server = run_webui("serve", "--broker", "memory://", "--database", database_url, "--no-embedded-collector",
                       "--basic-auth", USERS, "--roles", ROLES)
    server.wait_http("/login", 200, timeout=30)
    viewer, operator = log_in(server, "vic"), log_in(server, "oscar")
    assert 'id="beat-controls-' not in viewer.get(f"{server.url}/beat").text  # no buttons for a viewer
    assert f'id="beat-controls-{entry_id}"' in operator.get(f"{server.url}/beat").text
    tokens = {client: csrf_token(client, f"{server.url}/beat/{entry_id}") for client in (viewer, operator)}
    path = f"{server.url}/controls/beat/{entry_id}/run"
    refused = viewer.post(path, data={"csrf_token": tokens[viewer]})
    assert refused.status_code == 403 and "needs the operator role" in refused.text
    api_refused = requests.post(f"{server.url}/api/v1/beat/{entry_id}/run", auth=("vic", PASSWORD), timeout=10)
    assert api_refused.status_code == 403
    no_token = operator.post(path, data={})
    assert no_token.status_code == 403 and "CSRF token" in no_token.text
    asked = operator.post(path, data={"csrf_token": tokens[operator]})
    assert asked.status_code == 200 and 'id="control-confirm"' in asked.text


# -- the child process: django-celery-beat's migrations and its ORM ---------------------------------------


def _child(command: str, database_url: str, token: str) -> str:
    done = subprocess.run([sys.executable, __file__, command, database_url, token], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=child_env({"PYTHONPATH": str(REPO_ROOT)}))
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _setup(database_url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(**_django_settings(database_url))
    django.setup()


def _fill(database_url: str, token: str) -> None:
    from django.core.management import call_command

    _setup(database_url)
    call_command("migrate", "django_celery_beat", verbosity=0)
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for name, period in (("ctl-every-4s", PERIOD), ("witness-every-2s", WITNESS_PERIOD)):
        every = IntervalSchedule.objects.create(every=int(period), period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.create(name=name, task=TASK, interval=every, args=json.dumps([name, token]),
                                    headers=json.dumps({"tenant": "acme"}))


def _last_update(database_url: str) -> None:
    _setup(database_url)
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    change = PeriodicTasks.last_change()
    start = PeriodicTask.objects.get(name="every-30s").start_time
    print(json.dumps({"last_update": change.timestamp() if change else None,
                      "start_time": start.timestamp() if start else None}))


if __name__ == "__main__":
    if sys.argv[1] == "fill":
        _fill(sys.argv[2], sys.argv[3])
    else:
        _last_update(sys.argv[2])
