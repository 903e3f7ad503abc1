"""Beat monitoring end to end: a real `celery beat` (tests.beatapp) sending to the session's real worker, and
`webui serve -A tests.beatapp` watching it. Fires are seen and next due is right; stop beat and the short entries
go late, then missed, and beat shows down; start it again and all is back on time.

The entries carry a per-test token in their arguments, so fires from other sessions' beats on the same Redis
database are not ours.
"""
from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.support.processes import LoggedProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def start_beat(broker_url: str, env: dict[str, str], tmp_path, n: int) -> LoggedProcess:
    argv = [sys.executable, "-m", "celery", "-A", "tests.beatapp", "beat", "-s", str(tmp_path / "celerybeat-schedule"),
            "--max-interval", "1", "-l", "info"]
    return LoggedProcess(argv, tmp_path / f"beat-{n}.log", env)


def board(server) -> dict:
    response = requests.get(server.url + "/api/v1/beat", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def entries(server) -> dict[str, dict]:
    return {e["name"]: e for e in board(server)["entries"]}


def test_fires_are_seen_then_beat_stops_and_entries_go_late_then_missed_then_recover(worker, database_url,
                                                                                    run_webui, tmp_path):
    env = {"WEBUI_TEST_BROKER": worker.broker_url, "WEBUI_TEST_BEAT_TOKEN": f"token-{uuid.uuid4().hex[:8]}"}
    server = run_webui("serve", "-A", "tests.beatapp", "--broker", worker.broker_url, "--database", database_url,
                       "--batch-interval", "0.1", "--no-enable-events", "--beat-interval", "1",
                       "--beat-schedule-file", str(tmp_path / "celerybeat-schedule"), env=env)
    server.wait_http("/healthcheck", 200, timeout=30)
    beat = start_beat(worker.broker_url, env, tmp_path, 1)
    try:
        def fired_and_on_time():
            now = entries(server)
            short = now.get("echo-every-2s")
            failing = now.get("fail-every-3s")
            return (short and failing and len(short["fires"]) >= 3 and short["state"] == "on_time"
                    and failing["last_outcome"] == "FAILURE" and now)
        seen = wait_for(fired_and_on_time, timeout=40, interval=0.5, message="beat's fires seen, on time")
        short = seen["echo-every-2s"]
        assert short["task"] == "tests.celeryapp.echo" and short["schedule_text"] == "Every 2 seconds"
        assert short["last_fired_from"] == "events"
        assert short["next_due_at"] == pytest.approx(short["last_fired_at"] + 2.0, abs=0.01)
        assert short["fires"][0]["sender"] and short["fires"][0]["sender"].startswith("gen")
        nightly = seen["nightly-report"]
        midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        assert nightly["state"] == "waiting"
        assert nightly["next_due_at"] == pytest.approx(midnight.timestamp(), abs=1)
        assert nightly["schedule_text"].startswith("At 00:00")
        assert seen["weekday-morning"]["schedule_text"].startswith("At 07:30")
        assert "Monday through Friday" in seen["weekday-morning"]["schedule_text"]
        assert {e["source"] for e in seen.values()} <= {"app", "file"}

        live = wait_for(lambda: (b := board(server))["liveness"]["state"] == "up" and b["pong_nodes"] and b,
                        timeout=20, interval=0.5, message="beat answers pings")
        assert any(node.startswith("celerybeat@") for node in live["pong_nodes"])
        assert requests.get(server.url + "/health/beat", timeout=10).status_code == 200

        beat.stop()
        stopped_at = time.time()
        late = wait_for(lambda: entries(server)["echo-every-2s"]["state"] == "late" or
                        entries(server)["echo-every-2s"]["state"] == "missed", timeout=20, interval=0.25,
                        message="the 2 s entry late after beat stopped")
        assert late
        missed = wait_for(lambda: (e := entries(server)["echo-every-2s"])["state"] == "missed" and e,
                          timeout=20, interval=0.25, message="the 2 s entry missed")
        assert time.time() - stopped_at < 2 + 5 + 2 + 5  # period + grace, twice, plus a watcher pass or two
        assert missed["missed_count"] >= 1 and missed["overdue_by"] > missed["grace"]
        down = wait_for(lambda: (b := board(server))["liveness"]["state"] == "down" and b, timeout=20,
                        interval=0.5, message="beat shown down")
        assert down["liveness"]["reason"]
        probe = requests.get(server.url + "/health/beat", timeout=10)
        assert probe.status_code == 503
        assert "echo-every-2s" in probe.json()["missed"]
        assert entries(server)["nightly-report"]["state"] == "waiting"  # a daily job is not missed by a pause

        beat = start_beat(worker.broker_url, env, tmp_path, 2)
        wait_for(lambda: all(entries(server)[n]["state"] == "on_time" for n in ("echo-every-2s", "fail-every-3s")),
                 timeout=40, interval=0.5, message="back on time after beat restarted")
        wait_for(lambda: board(server)["liveness"]["state"] == "up", timeout=20, interval=0.5,
                 message="beat up again")
        assert requests.get(server.url + "/health/beat", timeout=10).status_code == 200
    finally:
        beat.stop()
        print(beat.log_tail())


def test_health_beat_says_unknown_when_no_schedule_is_watched(server):
    probe = requests.get(server.url + "/health/beat", timeout=10)
    assert probe.status_code == 503
    assert probe.json()["status"] == "unknown"
    assert "no beat schedule is watched" in probe.json()["reason"]
