"""Memory of `webui serve` over a big store while someone browses every page: RSS before, during and after.

    python bench/browse_rss.py --database sqlite:///bench/out/tasks-1m.sqlite3 --minutes 3
    python bench/browse_rss.py --database postgresql://postgres@127.0.0.1:5432/webui_bench_10m --minutes 3

Starts `python -m webui serve` (gunicorn, default workers and threads, the collector embedded as deployed,
subscribed to a private `redis-server` no worker publishes on, retention off so the store is left as it was)
on a store filled by `bench/task_list.py`, with the process's clock anchored to the newest stored task as
task_list.py does. A SQLite file is copied to a temporary directory first (the collector writes its status and gaps), so
the filled file stays as it was; `--in-place` skips the copy. Then it fetches, over HTTP, round after round
until `--minutes` have passed: the first page of `/tasks` and `/api/v1/tasks` for every filter of
task_list.FILTERS, five more pages of each through `next_cursor`, every page of task_list.pages(), and a CSV
export of an hour of one task name. Each process of the server (gunicorn's arbiter, its worker, the
collector and its reader process) is sampled every 0.5 s from /proc: RSS when the server first answered, after
`--idle` seconds left alone, after the first round, at the end, the highest sample and the kernel's
high-water mark (VmHWM).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from task_list import FILTERS, NAMES, REPO, pages  # noqa: E402

from webui.store.database import open_database  # noqa: E402

# Runs the `webui` command with time.time() shifted back by BENCH_CLOCK_SHIFT seconds (inherited by the fork).
BOOT = ("import os, sys, time; shift = float(os.environ.get('BENCH_CLOCK_SHIFT') or 0); real = time.time; "
        "time.time = (lambda: real() - shift) if shift else real; sys.argv[0] = 'webui'; "
        "from webui.cli import run; run()")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_tree(root: int) -> dict[int, str]:
    """{pid: "[name] command line"} of `root` and every descendant."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    found = {}
    for pid in tree:
        try:
            # The process name first: the collector's own process has the command line of `webui serve`.
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            found[pid] = f"[{name}] " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
        except OSError:
            continue
    return found


def memory(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) in MB, or None when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status.splitlines()
              if line.startswith(("VmRSS:", "VmHWM:"))}
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def role(pid: int, root: int, command: str) -> str:
    if pid == root:
        return "gunicorn arbiter"
    if "webui.collector.reader" in command:
        return "collector reader"
    if command.startswith("[webui-collector]"):  # webui.collector_process
        return "collector"
    return "gunicorn worker"


class Sampler(threading.Thread):
    def __init__(self, root: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak: dict[int, float] = {}
        self.commands: dict[int, str] = {}
        self.done = threading.Event()

    def snapshot(self) -> dict[int, tuple[float, float]]:
        tree = process_tree(self.root)
        self.commands.update(tree)
        found = {pid: m for pid in tree if (m := memory(pid)) is not None}
        for pid, (rss, _) in found.items():
            self.peak[pid] = max(self.peak.get(pid, 0.0), rss)
        return found

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.snapshot()


def get(base: str, path: str, timeout: float = 60.0) -> tuple[int, bytes, float]:
    """(status, body, seconds); status 0 when the answer broke off (a failed stream, a dropped connection)."""
    began = time.perf_counter()
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as response:
            return response.status, response.read(), time.perf_counter() - began
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), time.perf_counter() - began
    except (http.client.HTTPException, OSError):
        return 0, b"", time.perf_counter() - began


def browse_round(base: str, urls: list[str], timings: list[float], failures: list[str]) -> None:
    for path in urls:
        status, body, took = get(base, path)
        timings.append(took)
        if status != 200:
            failures.append(f"{status} {path}")
            continue
        if path.startswith("/api/v1/tasks?"):
            cursor, follow = json.loads(body).get("next_cursor"), 5
            while cursor and follow:
                status, body, took = get(base, f"{path}&{urlencode({'cursor': cursor})}")
                timings.append(took)
                if status != 200:
                    failures.append(f"{status} {path} (cursor)")
                    break
                cursor, follow = json.loads(body).get("next_cursor"), follow - 1


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if process.poll() is not None:
            raise SystemExit(f"webui serve exited with {process.returncode}")
        if get(base, "/", timeout=30)[0] == 200:
            return time.monotonic() - began
        time.sleep(0.2)
    raise SystemExit("webui serve did not answer / in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="a store filled by bench/task_list.py")
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to browse")
    parser.add_argument("--idle", type=float, default=30.0,
                        help="seconds to leave the server alone after it first answered, before browsing")
    parser.add_argument("--broker", help="a Redis nothing publishes events on (default: a private redis-server)")
    parser.add_argument("--in-place", action="store_true", help="serve a SQLite file where it is (no copy)")
    parser.add_argument("--no-embedded-collector", action="store_true", help="serve pages only")
    parser.add_argument("--serve-arg", action="append", default=[], help="pass ARG to `webui serve`; repeatable")
    options = parser.parse_args()

    database, workdir = options.database, Path(tempfile.mkdtemp(prefix="webui-browse-"))
    if database.startswith("sqlite:///") and not options.in_place:
        source = Path(database.removeprefix("sqlite:///"))
        for suffix in ("", "-wal"):
            if Path(f"{source}{suffix}").exists():
                shutil.copyfile(f"{source}{suffix}", workdir / f"store.sqlite3{suffix}")
        database = f"sqlite:///{workdir / 'store.sqlite3'}"
    db = open_database(database)
    with db.connection_context():
        newest = float(db.execute_sql("SELECT MAX(received_at) FROM task").fetchone()[0])
        tasks = int(db.execute_sql("SELECT MAX(id) FROM task").fetchone()[0])
    shift = max(0.0, time.time() - newest)
    broker, redis_server = options.broker, None
    if broker is None:
        redis_port = free_port()
        redis_server = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
        broker = f"redis://127.0.0.1:{redis_port}/0"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-c", BOOT, "serve", "--database", database, "--broker", broker,
            "--address", "127.0.0.1", "--port", str(port), "--no-enable-events", "--log-level", "warning",
            "--retention-days=0", "--failed-retention-days=0", "--event-retention-days=0",
            "--rollup-retention-days=0", "--audit-retention-days=0",
            *(["--no-embedded-collector"] if options.no_embedded_collector else []), *options.serve_arg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBUI_")}
    env["BENCH_CLOCK_SHIFT"] = repr(shift)
    log = open(workdir / "serve.log", "wb")
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    sampler = Sampler(process.pid)
    try:
        ready = wait_ready(base, process)
        time.sleep(1.0)
        start = sampler.snapshot()
        sampler.start()
        time.sleep(options.idle)  # the collector starts its loops; nobody browses yet
        idle = sampler.snapshot()
        rare = NAMES[-1]
        urls = [*(f"/tasks?{urlencode(p, doseq=True)}" for _, p in FILTERS),
                *(f"/api/v1/tasks?{urlencode(p, doseq=True)}" for _, p in FILTERS),
                *(url for _, url in pages(db)),
                "/tasks/export.csv?" + urlencode({"name": rare, "range": "1h"})]
        timings: list[float] = []
        failures: list[str] = []
        rounds, first_round = 0, None
        deadline = time.monotonic() + options.minutes * 60
        while time.monotonic() < deadline or rounds == 0:
            browse_round(base, urls, timings, failures)
            rounds += 1
            if first_round is None:
                first_round = sampler.snapshot()
        end = sampler.snapshot()
    finally:
        sampler.done.set()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        if redis_server is not None:
            redis_server.terminate()
            redis_server.wait(10)
    kind = urlsplit(options.database).scheme
    print(f"{kind}, {tasks:,} tasks, clock {shift / 3600:,.1f} h back; served after {ready:.1f} s; "
          f"{rounds} rounds, {len(timings):,} requests in {options.minutes:g} min "
          f"(p50 {statistics.median(timings) * 1000:,.0f} ms, max {max(timings) * 1000:,.0f} ms), "
          f"{len(failures)} failed")
    for failure in sorted(set(failures))[:10]:
        print(f"  failed: {failure}")
    print(f"{'process':18} {'pid':>7} {'start MB':>9} {'idle':>6} {'1st round':>10} {'end MB':>8} {'peak MB':>8} "
          f"{'VmHWM':>7}")
    for pid in sorted(start, key=lambda p: (p != process.pid, p)):
        rested = idle.get(pid, (float("nan"), 0.0))[0]
        after = (first_round or {}).get(pid, (float("nan"), 0.0))[0]
        last = end.get(pid, (float("nan"), float("nan")))
        print(f"{role(pid, process.pid, sampler.commands.get(pid, '')):18} {pid:7d} {start[pid][0]:9.0f} "
              f"{rested:6.0f} {after:10.0f} {last[0]:8.0f} {sampler.peak.get(pid, 0.0):8.0f} {last[1]:7.0f}")
    if database != options.database:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"server log: {workdir / 'serve.log'}")


if __name__ == "__main__":
    main()
