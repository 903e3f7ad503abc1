"""Beat's liveness by ping, against the session's real worker and a real `celery beat` with remote control on:
a worker the store has not heard of yet is never taken for beat (it also answers `stats`; beat answers only
`ping`), and a beat under a node name of its own (`beat -n`) still counts."""
from __future__ import annotations

import socket
import sys
import uuid

from tests.support.processes import LoggedProcess
from tests.support.waiting import wait_for
from webui import broadcasts
from webui.beat.watcher import BeatWatcher


def watcher(app) -> BeatWatcher:
    # The store knows no worker: as when the UI starts beside a cluster that is already running.
    return BeatWatcher(app, None, None, None, ping=True, known_workers=set)  # type: ignore[arg-type]


def pinged(app) -> set[str]:
    return {name for reply in broadcasts.broadcast(app, "ping", reply=True, timeout=1.0) or [] for name in reply}


def test_a_worker_the_store_has_not_seen_is_not_beat(worker):
    wait_for(lambda: worker.hostname in pinged(worker.app), timeout=20, interval=0.5,
             message=f"{worker.hostname} answering ping")

    assert worker.hostname not in watcher(worker.app)._ping_beat()


def test_a_beat_with_a_node_name_of_its_own_is_beat(worker, tmp_path):
    name = f"nightly-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    env = {"WEBUI_TEST_BROKER": worker.broker_url, "WEBUI_TEST_BEAT_TOKEN": f"token-{uuid.uuid4().hex[:8]}"}
    beat = LoggedProcess([sys.executable, "-m", "celery", "-A", "tests.beatapp", "beat", "-n", name,
                          "-s", str(tmp_path / "celerybeat-schedule"), "--max-interval", "1", "-l", "info"],
                         tmp_path / "beat.log", env)
    try:
        wait_for(lambda: name in pinged(worker.app), timeout=30, interval=0.5,
                 message=f"beat answering ping as {name}")
        wait_for(lambda: worker.hostname in pinged(worker.app), timeout=20, interval=0.5,
                 message=f"{worker.hostname} answering ping")

        found = watcher(worker.app)._ping_beat()

        assert name in found and worker.hostname not in found, found
    finally:
        beat.stop()
