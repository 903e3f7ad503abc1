#!/usr/bin/env python
"""Event → browser latency: from a task event put on the broker to the open page hearing of it.

    python bench/live_latency.py                                  # SQLite in a temporary directory
    python bench/live_latency.py --database postgresql://postgres@127.0.0.1:5432/test
    python bench/live_latency.py --samples 200 --load 5000,20000  # idle, then under two background loads
    python bench/live_latency.py --browser                        # also through a real Chromium

Starts the real `webui serve` on a fresh database (default settings: `batch_interval` 0.25 s, two gunicorn
workers, the collector in a process of its own), opens `/ws/live` as a page does, and then, for each sample,
publishes one probe task's `task-sent` straight to Redis (kombu's wire format, built with bench/ingest.py's helpers) and
times, from the publish:

- **changed**: the first `{"type":"changed"}` message naming `tasks` after which the page sees the task;
- **page**: that page's answer, `GET /tasks?name=bench.live_probe`, the fetch the message triggers, showing
  the probe's uuid (a `changed` that came before the commit triggers a fetch that does not: the next one
  counts, as it would in a browser);
- **browser** (`--browser`): a Chromium tab on that tasks page, until its "N new tasks since this page loaded"
  notice (fetched by htmx on `live:tasks`) counts the probe.

Samples are taken one at a time, 1.0–1.5 s apart (a page's messages are throttled to one a second, so closer
samples would measure the throttle), idle and then under each `--load` of background task events per second
(bench/ingest.py's stream, published live beside the probes). Reports p50/p95/max in milliseconds.
Target (multi-process issue): event → browser p95 < 1 s. Figures: docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis
import simple_websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # noqa: E402  (bench/ingest.py: the stream, the wire format, fresh stores)

REPO_ROOT = Path(__file__).resolve().parents[1]
PROBE_NAME = "bench.live_probe"
SAMPLE_TIMEOUT = 10.0  # seconds: a probe not seen by then is counted as missed
NOTICE_LIMIT = 90  # the browser's page is reloaded before its "N new tasks" notice reaches "100+"
CHROMIUM = "/usr/bin/chromium"


# -- the server under test --------------------------------------------------------------------------------


class Server:
    """`python -m webui serve` as a child process on a free port, logging to a file."""

    def __init__(self, broker: str, database: str, log_path: Path, extra_args: Sequence[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "webui", "serve", "--broker", broker, "--database", database,
                "--address", "127.0.0.1", "--port", str(self.port), "--no-enable-events",
                "--log-level", "warning", *extra_args]
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until /healthcheck answers 200: the embedded collector leads and is subscribed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"webui serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthcheck", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"webui serve not healthy after {timeout:g}s:\n{self.log_tail()}")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # gunicorn's worker and the collector's reader too
        except ProcessLookupError:
            pass
        self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- what is published ------------------------------------------------------------------------------------


class Probe:
    """One `task-sent` of a task named PROBE_NAME, as a client publishes it (via ingest's Publisher)."""

    def __init__(self, db: int) -> None:
        self.db = db
        self.client = ingest.Sender("gen4343@bench-live", 4343)

    def messages(self, task_id: str) -> list[ingest.Message]:
        publisher = ingest.Publisher(self.db)
        publisher.send(self.client.event("task-sent", {
            "uuid": task_id, "name": PROBE_NAME, "args": "()", "kwargs": "{}", "retries": 0, "eta": None,
            "expires": None, "root_id": task_id, "parent_id": None, "queue": "celery", "exchange": "",
            "routing_key": "celery"}, time.time()))
        return publisher.flush()


class Load(threading.Thread):
    """bench/ingest.py's stream at `rate` task events/s, encoded live, until `stop()`."""

    def __init__(self, broker: str, rate: int) -> None:
        super().__init__(name="load", daemon=True)
        self.client = redis.Redis.from_url(broker)
        self.feed = ingest.Feed(ingest.Stream(seed=2), ingest.redis_db(broker), rate, None, prebuild=False)
        self.window: ingest.Window | None = None

    def run(self) -> None:
        self.window = self.feed.publish(self.client)

    def stop(self) -> float:
        """Stop starting tasks, let those under way finish; the task events per second achieved."""
        self.feed.stream.close()
        self.join(30)
        self.client.close()
        sent = self.feed.tasks.task_events
        return round(sent / self.window.seconds) if self.window and self.window.seconds else 0


# -- measuring --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    database: str
    load: int  # target background task events/s (0: idle)
    load_achieved: int = 0
    changed_ms: list[float] = field(default_factory=list)
    page_ms: list[float] = field(default_factory=list)
    browser_ms: list[float] = field(default_factory=list)
    fetch_ms: list[float] = field(default_factory=list)  # the page fetch alone
    missed: int = 0
    early_changes: int = 0  # `changed` messages whose fetch did not show the probe yet


class LivePage:
    """What an open page does: a live socket; on each `changed` naming tasks, the tasks page fetched again."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.ws = simple_websocket.Client.connect(f"ws://127.0.0.1:{server.port}/ws/live")
        raw = self.ws.receive(timeout=30)
        if raw is None or json.loads(raw)["type"] != "hello":
            raise RuntimeError(f"/ws/live said no hello in 30 s (got {raw!r}):\n{server.log_tail()}")

    def drain(self) -> None:
        while self.ws.receive(timeout=0) is not None:
            pass

    def wait_for(self, task_id: str, published: float, result: RunResult) -> bool:
        deadline = published + SAMPLE_TIMEOUT
        while (left := deadline - time.perf_counter()) > 0:
            raw = self.ws.receive(timeout=left)
            if raw is None:
                continue
            message = json.loads(raw)
            if message["type"] != "changed" or "tasks" not in message["topics"]:
                continue
            heard = time.perf_counter()
            body = self.server.get(f"/tasks?name={PROBE_NAME}")
            shown = time.perf_counter()
            result.fetch_ms.append((shown - heard) * 1000)
            if task_id in body:
                result.changed_ms.append((heard - published) * 1000)
                result.page_ms.append((shown - published) * 1000)
                return True
            result.early_changes += 1
        return False

    def close(self) -> None:
        self.ws.close()


class BrowserPage:
    """A Chromium tab on the probes' tasks page: its new-tasks notice counts the probes since it loaded."""

    def __init__(self, server: Server) -> None:
        from playwright.sync_api import sync_playwright

        self.server = server
        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        self.page = self.browser.new_page()
        self.since_load = 0

    def load(self) -> None:
        self.page.goto(f"{self.server.url}/tasks?name={PROBE_NAME}")
        self.page.wait_for_function("document.querySelector('#live-toggle') !== null")
        time.sleep(1.5)  # the socket opens and its first dispatch passes
        self.since_load = 0

    def expect_next(self) -> None:
        if self.since_load >= NOTICE_LIMIT:
            self.load()

    def wait_counted(self, published: float, result: RunResult) -> bool:
        self.since_load += 1
        wanted = f"{self.since_load} new task"
        try:
            self.page.wait_for_function(
                "wanted => (document.querySelector('#new-tasks')?.textContent || '').includes(wanted)",
                arg=wanted, polling="raf", timeout=SAMPLE_TIMEOUT * 1000)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: counted as missed
            return False
        result.browser_ms.append((time.perf_counter() - published) * 1000)
        return True

    def close(self) -> None:
        self.browser.close()
        self._playwright.stop()


def sample(server: Server, broker: str, samples: int, result: RunResult, browser: bool) -> None:
    client = redis.Redis.from_url(broker)
    probe = Probe(ingest.redis_db(broker))
    page = LivePage(server)
    tab = BrowserPage(server) if browser else None
    try:
        if tab is not None:
            tab.load()
        time.sleep(1.5)  # the hub's first look at the store
        for _ in range(samples):
            if tab is not None:
                tab.expect_next()
            page.drain()
            task_id = str(uuid.uuid4())
            pipe = client.pipeline(transaction=False)
            for channel, payload in probe.messages(task_id):
                pipe.publish(channel, payload)
            published = time.perf_counter()
            pipe.execute()
            seen = page.wait_for(task_id, published, result)
            if tab is not None:
                seen = tab.wait_counted(published, result) and seen
            result.missed += not seen
            time.sleep(random.uniform(1.0, 1.5))
    finally:
        page.close()
        if tab is not None:
            tab.close()
        client.close()


def run_once(opts: argparse.Namespace, workdir: Path, load: int) -> RunResult:
    store = ingest.fresh_store(opts.database, workdir, f"live-{load}")
    result = RunResult(store.kind, load)
    server = Server(opts.broker, store.url, workdir / f"serve-{store.kind}-{load}.log", opts.serve_arg)
    background = None
    try:
        server.wait_healthy()
        if load:
            background = Load(opts.broker, load)
            background.start()
            time.sleep(3)  # the store is under load before the first probe
        sample(server, opts.broker, opts.samples, result, opts.browser)
    finally:
        if background is not None:
            result.load_achieved = int(background.stop())
        server.stop()
        store.close(keep=opts.keep)
    return result


# -- reporting and the command line -----------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]
    return f"{at(0.5):.0f} / {at(0.95):.0f} / {ordered[-1]:.0f}"


def report(results: Sequence[RunResult]) -> None:
    header = ("db", "load ev/s", "samples", "changed p50/p95/max ms", "page p50/p95/max ms",
              "browser p50/p95/max ms", "fetch p50 ms", "missed", "early")
    widths = (10, 11, 8, 23, 23, 23, 12, 7, 6)
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for r in results:
        load = f"{r.load_achieved:,}" if r.load else "idle"
        fetch = sorted(r.fetch_ms)[len(r.fetch_ms) // 2] if r.fetch_ms else 0.0
        row = (r.database, load, str(len(r.changed_ms)), percentiles(r.changed_ms), percentiles(r.page_ms),
               percentiles(r.browser_ms), f"{fetch:.0f}", str(r.missed), str(r.early_changes))
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="sqlite:///PATH (writes PATH-live-<load>) or a PostgreSQL URL where"
                        " each run creates and drops a database; default: SQLite in a temporary directory")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/11",
                        help="Redis URL; its db number isolates the bench's event channels")
    parser.add_argument("--samples", type=int, default=100, help="probes per run")
    parser.add_argument("--load", default="5000", help="background task events/s, comma-separated, each run"
                        " after the idle one; 0 or '' for idle only")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle run")
    parser.add_argument("--browser", action="store_true", help=f"also time a real Chromium ({CHROMIUM})")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for `webui serve`, e.g. --serve-arg=--batch-interval=0.1")
    parser.add_argument("--json", type=Path, help="also write the environment, options and samples here")
    parser.add_argument("--keep", action="store_true", help="keep the databases and server logs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    loads = ([] if opts.no_idle else [0]) + [int(x) for x in opts.load.split(",") if x.strip() and int(x)]
    workdir = Path(tempfile.mkdtemp(prefix="webui-live-bench-"))
    results: list[RunResult] = []
    try:
        for load in loads:
            results.append(run_once(opts, workdir, load))
    except RuntimeError as error:  # the server would not start: its log says why
        print(f"live_latency: {error}", file=sys.stderr)
        return 1
    finally:
        if opts.keep or any(r.missed for r in results) or len(results) < len(loads):
            print(f"server logs{' and databases' if opts.keep else ''} kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results)
    if opts.json:
        document = {"environment": ingest.environment(opts.broker), "options": vars(opts),
                    "results": [asdict(r) for r in results]}
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
