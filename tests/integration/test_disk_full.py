"""The disk under SQLite fills up: the collector holds what it receives and writes it all once there is room
again; the health probe says why it is unhealthy meanwhile. (A tmpfs of a few MB stands in for the disk.)"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.services import unavailable
from tests.support.store import StoreReader
from tests.support.waiting import wait_for


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        unavailable(f"cannot mount a small tmpfs to fill up (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(path: Path) -> None:
    """Write `path` until the filesystem has no room left."""
    # Unbuffered: a buffered file would try to write what the last failed write left in its buffer on close,
    # outside the suppress, and fail there.
    with open(path, "wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 65536)
            os.fsync(filler.fileno())


def test_a_full_disk_delays_events_and_loses_none(redis_db, small_disk, run_webui):
    database_url = f"sqlite:///{small_disk / 'webui.sqlite3'}"
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--batch-interval", "0.1",
                       "--no-enable-events")
    server.wait_http("/healthcheck", 200, timeout=30)
    store = StoreReader(database_url)
    try:
        with dispatcher(redis_db) as d:
            before = [send_task_lifecycle(d) for _ in range(20)]
        wait_for(lambda: store.count("task_event") == 60, timeout=20, message="events before the disk filled")

        filler = small_disk / "filler"
        fill(filler)
        with dispatcher(redis_db) as d:
            during = [send_task_lifecycle(d) for _ in range(300)]
        wait_for(lambda: "database or disk is full" in server.log_text(), timeout=20,
                 message="the writer never hit the full disk, or did not say so")
        # The probe's own one-row write may still fit in the WAL; the writer's heartbeat, though, stops.
        health = wait_for(lambda: (h := server.get("/healthcheck")).status == 503 and h, timeout=20,
                          message="/healthcheck stayed OK while nothing could be written")
        assert "not writable" in health.body or "collector not running" in health.body, health.body
        assert server.get("/tasks").status == 200  # reading needs no room
        time.sleep(2)

        filler.unlink()
        wait_for(lambda: store.count("task_event") == 60 + 900, timeout=60,
                 message="events received while the disk was full were not all written once it had room")
        assert all(store.state(t) == "SUCCESS" for t in before + during)
        assert store.count("task") == 320
        server.wait_http("/healthcheck", 200, timeout=30)
    finally:
        store.close()
