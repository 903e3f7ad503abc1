#!/usr/bin/env python
"""Many people at once: live pages and API pollers on one UI while it ingests a steady stream.

    python bench/load.py                                     # 50 live pages, 10 pollers, 5,000 ev/s, 60 s, SQLite
    python bench/load.py --pages 50 --pollers 10 --rate 10000 --seconds 120
    python bench/load.py --database postgresql://postgres@127.0.0.1:5432/test --workers 1

Starts the real `webui serve` (a fresh database; `--workers` gunicorn processes with enough threads for every
socket), then at once:

- the stream: bench/ingest.py's realistic task events at `--rate` per second, published straight to Redis;
- `--pages` live pages, opened at random times over the first 80% of the `--warmup`: each loads the tasks
  page, opens `/ws/live` as a browser tab does, and on every `changed` naming `tasks` fetches what the tasks
  page then fetches through htmx (its "new tasks" notice), and every tenth time the whole page, as a reload
  would;
- `--pollers` API scripts: each asks `/api/v1/tasks?limit=50`, Flower's `/api/tasks?limit=100&state=FAILURE`
  and `/api/workers` once a second, like a dashboard job, each at a phase of its own.

Pages and pollers run as threads of `--client-processes` processes (browsers and scripts are processes of
their own: in one interpreter, the clients' own wait for its GIL would be counted as the server's latency).
Requests are timed only after the warm-up, for `--seconds`; the page loads of the warm-up are reported on
their own line.

It reports the latency (p50/p95/max ms) of each kind of request and how many failed, the `changed` messages
per page per second, the server's RSS, and whether the store ended up holding every event published (the
stream is lossless only if it does). Targets (reliability issue): the pages keep their latency targets (a
tasks page p95 < 100 ms at rest: docs/performance.md) and no event is lost. Figures: docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import simple_websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # noqa: E402  (the stream, fresh stores, RSS of a process tree)
from live_latency import Load, Server, percentiles  # noqa: E402


class LoadProcess:
    """live_latency's Load in a process of its own. Encoding 5,000 events a second takes most of a core: in the
    bench's process, every client thread would wait for its GIL, and that wait would be counted as the server's
    latency (real browsers and scripts are other processes)."""

    def __init__(self, broker: str, rate: int) -> None:
        context = multiprocessing.get_context("fork")  # before any client thread exists
        self._stop, self._result = context.Event(), context.Queue()
        self.process = context.Process(target=_publish, args=(broker, rate, self._stop, self._result),
                                       name="load", daemon=True)

    def start(self) -> None:
        self.process.start()

    def stop(self) -> tuple[int, int]:
        """Stop the stream; (task events/s achieved, task events published)."""
        self._stop.set()
        result = self._result.get(timeout=60)
        self.process.join(30)
        return result


def _publish(broker: str, rate: int, stop: Any, result: Any) -> None:
    load = Load(broker, rate)
    load.start()
    stop.wait()
    achieved = load.stop()
    result.put((achieved, load.feed.tasks.task_events))


class Timings:
    """Request latencies by kind, and failures, from every thread of one client process. Requests are timed
    only once `measuring` is set (the warm-up's page loads are kept apart, under "tasks page (load)")."""

    def __init__(self, url: str, measuring: Any) -> None:
        self.url, self.measuring = url, measuring
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.failed: dict[str, int] = defaultdict(int)
        self.changes = 0
        self._lock = threading.Lock()

    def get(self, kind: str, path: str, always: bool = False) -> str | None:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                body = response.read().decode(errors="replace")
        except (urllib.error.URLError, OSError):
            self.failure(kind)
            return None
        elapsed = (time.perf_counter() - started) * 1000
        if always or self.measuring.is_set():
            with self._lock:
                self.ms[kind].append(elapsed)
        return body

    def failure(self, kind: str) -> None:
        with self._lock:
            self.failed[kind] += 1

    def changed(self) -> None:
        if self.measuring.is_set():
            with self._lock:
                self.changes += 1

    def result(self) -> dict:
        return {"ms": dict(self.ms), "failed": dict(self.failed), "changes": self.changes}


def live_page(timings: Timings, opens_after: float, stop: Any) -> None:
    """One open tasks page: opened `opens_after` seconds in, then a socket, and what htmx fetches when it says
    the tasks changed."""
    if stop.wait(opens_after):
        return
    ws = simple_websocket.Client(timings.url.replace("http://", "ws://") + "/ws/live")
    try:
        timings.get("tasks page (load)", "/tasks", always=True)
        fetches = 0
        while not stop.is_set():
            raw = ws.receive(timeout=1.0)
            if raw is None:
                continue
            message = json.loads(raw)
            if message.get("type") != "changed" or "tasks" not in message.get("topics", ()):
                continue
            timings.changed()
            fetches += 1
            if fetches % 10 == 0:
                timings.get("tasks page (reload)", "/tasks")
            else:
                timings.get("new-tasks notice", "/tasks/new?newest=1")
    except simple_websocket.ConnectionClosed:
        timings.failure("socket closed")
    finally:
        ws.close()


def poller(timings: Timings, starts_after: float, stop: Any) -> None:
    """A dashboard job: three API calls a second, started `starts_after` seconds in (jobs started by
    different people keep different phases)."""
    if stop.wait(starts_after):
        return
    while not stop.is_set():
        began = time.monotonic()
        timings.get("/api/v1/tasks", "/api/v1/tasks?limit=50")
        timings.get("/api/tasks FAILURE", "/api/tasks?limit=100&state=FAILURE")
        timings.get("/api/workers", "/api/workers")
        stop.wait(max(0.0, 1.0 - (time.monotonic() - began)))


class ClientProcess:
    """Some of the pages and pollers, as threads of a process of their own: a browser tab or a script is a
    process of its own, and 60 client threads in one interpreter would wait for its GIL, and that wait
    would be counted as the server's latency."""

    def __init__(self, url: str, pages: Sequence[float], pollers: Sequence[float], measuring: Any,
                 stop: Any) -> None:
        context = multiprocessing.get_context("fork")
        self._result = context.Queue()
        self.process = context.Process(target=_run_clients, name="clients", daemon=True,
                                       args=(url, list(pages), list(pollers), measuring, stop, self._result))

    def start(self) -> None:
        self.process.start()

    def result(self) -> dict:
        result = self._result.get(timeout=90)
        self.process.join(30)
        return result


def _run_clients(url: str, pages: list[float], pollers: list[float], measuring: Any, stop: Any,
                 result: Any) -> None:
    timings = Timings(url, measuring)
    threads = [threading.Thread(target=live_page, args=(timings, delay, stop)) for delay in pages]
    threads += [threading.Thread(target=poller, args=(timings, delay, stop)) for delay in pollers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(35)
    result.put(timings.result())


def merge(results: Sequence[dict]) -> dict:
    merged: dict = {"ms": defaultdict(list), "failed": defaultdict(int), "changes": 0}
    for result in results:
        for kind, values in result["ms"].items():
            merged["ms"][kind] += values
        for kind, count in result["failed"].items():
            merged["failed"][kind] += count
        merged["changes"] += result["changes"]
    return {"ms": dict(merged["ms"]), "failed": dict(merged["failed"]), "changes": merged["changes"]}


def cpu_snapshot(server_pid: int, load_pid: int, client_pids: Sequence[int]) -> dict[str, float]:
    """CPU seconds so far by role: the server's web processes, its collector (with its event reader), the
    gunicorn arbiter, the stream's publisher and this bench's client threads."""
    tree = ingest.process_tree_cpu(server_pid)
    collectors = {pid for pid, (comm, _, _) in tree.items() if comm == "webui-collector"}
    roles: dict[str, float] = defaultdict(float)
    for pid, (_, ppid, seconds) in tree.items():
        role = ("arbiter" if pid == server_pid else "collector" if pid in collectors or ppid in collectors
                else "web processes")
        roles[role] += seconds
    roles["publisher"] = sum(seconds for _, _, seconds in ingest.process_tree_cpu(load_pid).values())
    roles["bench clients"] = sum(seconds for pid in client_pids
                                 for _, _, seconds in ingest.process_tree_cpu(pid).values())
    return dict(roles)


def cores_used(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {role: round((after[role] - before.get(role, 0.0)) / seconds, 2) for role in after}


def run(opts: argparse.Namespace, workdir: Path) -> dict:
    store = ingest.fresh_store(opts.database, workdir, "load")
    # Each process gets threads for every socket: the kernel, not the bench, spreads the connections over the
    # processes, unevenly, and a process out of socket threads closes the extra ones (1013).
    threads = opts.pages + opts.pollers + 16
    serve_args = ["--workers", str(opts.workers), "--threads", str(threads),
                  "--live-max-sockets", str(opts.pages), *opts.serve_arg]
    server = Server(opts.broker, store.url, workdir / "serve.log", serve_args)
    context = multiprocessing.get_context("fork")
    measuring, stop = context.Event(), context.Event()
    rng = random.Random(opts.seed)
    # People open their pages over the warm-up, and their scripts run at phases of their own.
    page_delays = sorted(rng.uniform(0, opts.warmup * 0.8) for _ in range(opts.pages))
    poller_delays = [rng.uniform(0, 1) for _ in range(opts.pollers)]
    clients = [ClientProcess(server.url, page_delays[i::opts.client_processes],
                             poller_delays[i::opts.client_processes], measuring, stop)
               for i in range(opts.client_processes)]
    background = None
    rss_peak = 0
    try:
        server.wait_healthy()
        background = LoadProcess(opts.broker, opts.rate)
        background.start()
        for client in clients:
            client.start()
        client_pids = [client.process.pid for client in clients if client.process.pid is not None]
        time.sleep(opts.warmup)
        measuring.set()
        began = time.monotonic()
        cpu_before = cpu_snapshot(server.process.pid, background.process.pid, client_pids)
        ends = began + opts.seconds
        while time.monotonic() < ends:
            rss_peak = max(rss_peak, ingest.process_tree_kb(server.process.pid, "VmRSS") or 0)
            time.sleep(1.0)
        cores = cores_used(cpu_before, cpu_snapshot(server.process.pid, background.process.pid, client_pids),
                           time.monotonic() - began)
        stop.set()
        timings = merge([client.result() for client in clients])
        achieved, published = background.stop()
        background = None
        stored, _ = ingest.wait_persisted(store, published, idle_timeout=15)
    finally:
        stop.set()
        if background is not None:
            background.stop()
        server.stop()
        store.close(keep=opts.keep)
    return {"database": store.kind, "pages": opts.pages, "pollers": opts.pollers, "seconds": opts.seconds,
            "warmup": opts.warmup, "rate_target": opts.rate, "rate_achieved": achieved,
            "events_published": published, "events_stored": stored,
            "changed_per_page_per_s": timings["changes"] / max(opts.pages, 1) / opts.seconds,
            "rss_peak_mb": round(ingest.mb(rss_peak), 1), "cores": cores, "ms": timings["ms"],
            "failed": timings["failed"]}


def report(result: dict) -> None:
    print(f"{result['database']}: {result['pages']} live pages, {result['pollers']} API pollers, "
          f"{result['seconds']:g} s measured after {result['warmup']:g} s of warm-up, at {result['rate_achieved']:,}"
          f" task events/s (target {result['rate_target']:,})")
    lost = max(0, result["events_published"] - result["events_stored"])  # stored counts the probe pages' too
    print(f"  task events published {result['events_published']:,}, stored {result['events_stored']:,}, "
          f"lost {lost:,}")
    print(f"  'changed' per page per second: {result['changed_per_page_per_s']:.2f}; "
          f"server RSS peak (all processes): {result['rss_peak_mb']} MB")
    print("  cores used: " + ", ".join(f"{role} {cores:.2f}" for role, cores in result["cores"].items())
          + f" (of {os.cpu_count()})")
    print(f"  {'request':<22} {'count':>7}  {'p50 / p95 / max ms':>22}  {'failed':>6}")
    for kind in sorted(result["ms"]):
        values = result["ms"][kind]
        print(f"  {kind:<22} {len(values):>7}  {percentiles(values):>22}  {result['failed'].get(kind, 0):>6}")
    for kind, count in sorted(result["failed"].items()):
        if kind not in result["ms"]:
            print(f"  {kind:<22} {'':>7}  {'':>22}  {count:>6}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="sqlite:///PATH (writes PATH-load) or a PostgreSQL URL where a"
                        " database is created and dropped; default: SQLite in a temporary directory")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/10",
                        help="Redis URL; its db number isolates the bench's event channels")
    parser.add_argument("--pages", type=int, default=50, help="live pages (WebSockets)")
    parser.add_argument("--pollers", type=int, default=10, help="API pollers, three requests a second each")
    parser.add_argument("--rate", type=int, default=5000, help="background task events per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load is measured")
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds of load before measuring; the pages open during its first 80%%")
    parser.add_argument("--client-processes", type=int, default=4,
                        help="processes the pages and pollers are spread over")
    parser.add_argument("--seed", type=int, default=1, help="seed of the pages' and pollers' start times")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn processes (webui serve's default)")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for `webui serve`; repeatable")
    parser.add_argument("--json", type=Path, help="also write the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the database and the server log")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="webui-load-bench-"))
    try:
        result = run(opts, workdir)
    except RuntimeError as error:  # the server would not start: its log says why
        print(f"load: {error}", file=sys.stderr)
        print(f"server log kept in {workdir}", file=sys.stderr)
        return 1
    report(result)
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps({"environment": ingest.environment(opts.broker), "options": vars(opts),
                                         "result": result}, indent=2, default=str) + "\n")
    if opts.keep:
        print(f"database and server log kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
