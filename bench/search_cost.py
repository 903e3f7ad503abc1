"""What the search index costs the collector's writer: CPU per task with the indexer on and off.

    python bench/search_cost.py --tasks 100000

No broker: the tasks' events (received with args and kwargs, started, succeeded with a result or failed with an
exception, 5% failures) are handed to a real Writer on a fresh SQLite file all at once, as fast as it takes them.
With the indexer off, then on, it reports the seconds until every event is stored and, with it on, until the
index has caught up, with the process's CPU seconds for each, and the index's bytes per task. Busy with a backlog
the writer indexes only every INDEX_PACE seconds; the rest waits until the backlog is gone, as under a burst.
CPU time is what to compare on a shared machine: wall time varies with what else runs there.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from webui.collector.writer import CollectorStats, Writer  # noqa: E402
from webui.privacy import Redactor  # noqa: E402
from webui.store.database import open_database  # noqa: E402
from webui.store.schema import upgrade  # noqa: E402


def events(tasks: int, seed: int = 1) -> list[list[dict]]:
    rng = random.Random(seed)
    now = time.time() - tasks * 0.01
    chunks, chunk = [], []
    for i in range(tasks):
        task_id, ts = str(uuid.UUID(int=rng.getrandbits(128))), now + i * 0.01
        common = {"uuid": task_id, "hostname": f"w{i % 4}@bench", "pid": 1, "clock": i}
        chunk += [
            {"type": "task-received", "timestamp": ts, "name": f"proj.tasks.t{i % 30}", "retries": 0,
             "args": f"({rng.randrange(10**6)}, 'user-{rng.randrange(10**5)}@example.com')",
             "kwargs": f"{{'attempt': {rng.randrange(3)}, 'priority': 'normal'}}", **common},
            {"type": "task-started", "timestamp": ts + 0.001, **common},
            {"type": "task-failed", "timestamp": ts + 0.002, "exception": f"ValueError('bad {i}')", **common}
            if rng.random() < 0.05 else
            {"type": "task-succeeded", "timestamp": ts + 0.002, "result": f"{{'ok': True, 'n': {i}}}",
             "runtime": 0.001, **common},
        ]
        if len(chunk) >= 2400:
            chunks.append(chunk)
            chunk = []
    if chunk:
        chunks.append(chunk)
    return chunks


def run(stream: list[list[dict]], tasks: int, index: bool) -> dict[str, float]:
    path = Path(tempfile.mkdtemp(prefix="webui-search-cost-")) / "store.sqlite3"
    db = open_database(f"sqlite:///{path}")
    upgrade(db)
    writer = Writer(db, Redactor(), CollectorStats(leader="bench"))
    if not index:
        writer.search.start = lambda: None  # type: ignore[method-assign]  # stays disabled
    writer.start()
    writer.leading.wait(10)
    wall, cpu = time.perf_counter(), time.process_time()
    for chunk in stream:
        writer.put_events(chunk, time.time())
    while writer.pending():
        time.sleep(0.01)
    stored = {"stored_s": time.perf_counter() - wall, "stored_cpu": time.process_time() - cpu}
    while index and not (writer.search.caught_up and writer.search.mark >= tasks):
        time.sleep(0.01)
    stored.update(done_s=time.perf_counter() - wall, done_cpu=time.process_time() - cpu)
    writer.stop()
    with db.connection_context():
        stored["index_bytes"] = db.execute_sql("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat "
                                               "WHERE name LIKE 'task_fts%'").fetchone()[0] / tasks
    db.close()
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    stream = events(options.tasks)
    count = sum(map(len, stream))
    print(f"{options.tasks:,} tasks, {count:,} events")
    print(f"{'indexer':8} {'stored s':>9} {'CPU s':>7} {'events/s':>9} {'indexed s':>10} {'CPU s':>7} "
          f"{'CPU µs/task':>12} {'index B/task':>13}")
    for _ in range(options.rounds):
        for index in (False, True):
            r = run(stream, options.tasks, index)
            print(f"{'on' if index else 'off':8} {r['stored_s']:9.1f} {r['stored_cpu']:7.1f} "
                  f"{count / r['stored_s']:9,.0f} {r['done_s']:10.1f} {r['done_cpu']:7.1f} "
                  f"{r['done_cpu'] / options.tasks * 1e6:12.0f} {r['index_bytes']:13.0f}", flush=True)


if __name__ == "__main__":
    main()
