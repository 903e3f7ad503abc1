"""How long the UI takes to serve again after a restart with many tasks stored.

    python bench/restart.py --tasks 100000 [--database sqlite:///…|postgresql://…] [--broker redis://…]

Fills a fresh database with N finished tasks (4 events each, through the collector's own writer path, so
the rows are what production stores), then starts `webui serve` and times from process start to the first
200 on `/` and on `/healthcheck`. Target: under 5 s at 100,000 tasks.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from webui.collector.writer import CollectorStats, Writer  # noqa: E402
from webui.privacy import Redactor  # noqa: E402
from webui.store.database import open_database  # noqa: E402
from webui.store.schema import upgrade  # noqa: E402


def fill(database: str, tasks: int) -> float:
    db = open_database(database)
    upgrade(db)
    writer = Writer(db, Redactor(), CollectorStats(leader="bench"), batch_interval=0.05, batch_size=20_000)
    writer.start()
    writer.leading.wait(10)
    started = time.perf_counter()
    now = time.time() - tasks * 0.01
    for start in range(0, tasks, 2000):
        events = []
        for i in range(start, min(start + 2000, tasks)):
            task_id, ts = str(uuid.uuid4()), now + i * 0.01
            common = {"uuid": task_id, "hostname": "w1@bench", "pid": 1, "clock": i}
            events += [
                {"type": "task-received", "timestamp": ts, "name": "bench.add", "args": "(1, 2)", "kwargs": "{}",
                 "retries": 0, "root_id": task_id, **common},
                {"type": "task-started", "timestamp": ts + 0.001, **common},
                {"type": "task-succeeded", "timestamp": ts + 0.002, "result": "3", "runtime": 0.001, **common},
            ]
        writer.put_events(events, time.time())
    while writer.pending():
        time.sleep(0.1)
    writer.stop()
    db.close()
    return time.perf_counter() - started


def wait_ok(url: str, deadline: float) -> float:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic()
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.02)
    raise TimeoutError(url)


def serve_time(database: str, broker: str, port: int) -> tuple[float, float]:
    argv = [sys.executable, "-m", "webui", "serve", "--database", database, "--broker", broker,
            "--port", str(port), "--no-enable-events", "--log-level", "warning"]
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = wait_ok(f"http://127.0.0.1:{port}/", started + 60) - started
        health = wait_ok(f"http://127.0.0.1:{port}/healthcheck", started + 60) - started
        return page, health
    finally:
        process.terminate()
        process.wait(15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--database")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--port", type=int, default=5590)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = args.database or f"sqlite:///{os.path.join(tmp, 'restart.sqlite3')}"
        filled = fill(database, args.tasks)
        print(f"stored {args.tasks:,} tasks ({3 * args.tasks:,} events) in {filled:.1f}s "
              f"({3 * args.tasks / filled:,.0f} events/s through the writer)")
        for run in (1, 2, 3):
            page, health = serve_time(database, args.broker, args.port)
            print(f"restart {run}: / answered after {page:.2f}s, /healthcheck 200 after {health:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
