"""What the worker companion (webui.agent) costs per task: the same trivial tasks through one real worker,
without and with the companion, rounds alternating so the machine's drift hits both alike.

    python bench/agent_overhead.py --broker redis://127.0.0.1:6379/9 --tasks 2000 --rounds 3 --pool solo

Two figures per round: the worker's CPU time (user + system, its pool processes included) per task, which other
load on the machine hardly moves, and the wall time from sending the first task to the last result being ready
(sending overlaps running). The companion writes to the broker's Redis (another database number).

    python bench/agent_overhead.py --micro      # CPU per record, task thread and background thread, in-process

`--micro` isolates the companion's own cost, which a shared machine's noise hides in the end-to-end rounds.
Figures: docs/performance.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import redis
from celery import Celery
from kombu import Connection

from webui.agent import DEFAULT_MAX_LENGTH
from webui.agent.transport import agent_queue, is_amqp

REPO_ROOT = Path(__file__).resolve().parents[1]


def start_worker(broker: str, pool: str, agent_url: str | None, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WEBUI_TEST_BROKER": broker, "WEBUI_TEST_TASK_EVENTS": "0"}
    env.pop("WEBUI_AGENT_URL", None)
    if agent_url:
        env["WEBUI_AGENT_URL"] = agent_url
    argv = [sys.executable, "-m", "celery", "-A", "tests.celeryapp", "worker", "-P", pool,
            *(["-c", "2"] if pool == "prefork" else []), "--without-mingle", "--without-gossip",
            "-n", f"bench-{os.getpid()}@%h", "-l", "warning"]
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def one_round(app: Celery, tasks: int) -> float:
    began = time.perf_counter()
    results = [app.send_task("tests.celeryapp.add", (i, i)) for i in range(tasks)]
    results[-1].get(timeout=300)
    for result in results[:-1]:
        result.get(timeout=300)
    return time.perf_counter() - began


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the worker and its pool processes so far."""
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(p.cpu_times().user + p.cpu_times().system for p in processes)


def measure(broker: str, pool: str, agent_url: str | None, tasks: int, log: Path) -> tuple[float, float]:
    app = Celery("bench", broker=broker, backend=broker)
    worker = start_worker(broker, pool, agent_url, log)
    try:
        deadline = time.monotonic() + 30
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker never answered; see {log}")
        one_round(app, 100)  # warm up: imports, connections, the companion's thread
        cpu = cpu_seconds(worker.pid)
        wall = one_round(app, tasks)
        time.sleep(0.5)  # the companion's last batch
        return cpu_seconds(worker.pid) - cpu, wall
    finally:
        worker.terminate()
        worker.wait(30)


def micro(url: str, records_count: int = 60_000) -> None:
    """CPU per record: building and buffering it (the task's thread), then JSON and XADD (the background's)."""
    import types

    from webui.agent import records
    from webui.agent.publisher import Publisher

    request = types.SimpleNamespace(id="2f0c6f7e-1b8a-4a5e-9b1e-3c0f1f6f9e11", retries=0, hostname="w1@host")
    publisher = Publisher(url, "bench:agent", 100_000, records_count)
    publisher._thread, publisher._pid = object(), os.getpid()  # type: ignore[assignment]  # no thread: by hand
    began = time.process_time()
    for i in range(records_count // 2):
        publisher.put(records.task_record("task-started", request))
        publisher.put(records.succeeded(request, i, 0.001))
    task_side = (time.process_time() - began) / records_count
    batch = list(publisher._buffer)
    began = time.process_time()
    for start in range(0, len(batch), 500):
        publisher._send(batch[start:start + 500])
    background = (time.process_time() - began) / len(batch)
    redis.Redis.from_url(url).delete("bench:agent")
    print(f"per record: {task_side * 1e6:.1f} µs CPU in the task's thread, {background * 1e6:.1f} µs in the "
          f"background thread (redis-py side; Redis's own work not included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", default="solo", choices=("solo", "prefork"))
    parser.add_argument("--micro", action="store_true", help="only the in-process CPU cost per record")
    parser.add_argument("--agent-url", help="where the companion writes (default: the broker's Redis, the next "
                        "database number); amqp://… for the RabbitMQ transport")
    options = parser.parse_args()
    if options.micro:
        micro(options.broker)
        return
    agent_url = options.agent_url or (
        options.broker.rsplit("/", 1)[0] + "/" + str(int(options.broker.rsplit("/", 1)[1]) + 1))
    log = Path("/tmp") / f"agent-overhead-{os.getpid()}.log"
    redis.Redis.from_url(options.broker).flushdb()
    times: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
    for _ in range(options.rounds):
        for label, url in (("without", None), ("with", agent_url)):
            times[label].append(measure(options.broker, options.pool, url, options.tasks, log))
            cpu, wall = times[label][-1]
            print(f"{label:7} companion: {cpu:.2f} s CPU, {wall:.2f} s wall for {options.tasks} tasks", flush=True)
    if is_amqp(agent_url):
        with Connection(agent_url) as connection:
            queue = agent_queue("webui:agent", DEFAULT_MAX_LENGTH)(connection.default_channel)
            print(f"queue messages: {queue.queue_declare(passive=True).message_count}")
            queue.delete()
    else:
        stream = redis.Redis.from_url(agent_url)
        print(f"stream entries: {stream.xlen('webui:agent')}, memory: {stream.memory_usage('webui:agent')} bytes")
        stream.delete("webui:agent")
    for kind, at in (("CPU", 0), ("wall", 1)):
        without = statistics.median(t[at] for t in times["without"])
        with_ = statistics.median(t[at] for t in times["with"])
        print(f"median {kind} per task: without {without / options.tasks * 1e3:.3f} ms, with "
              f"{with_ / options.tasks * 1e3:.3f} ms: {(with_ - without) / options.tasks * 1e6:+.0f} µs per task "
              f"({(with_ / without - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
