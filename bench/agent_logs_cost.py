"""What the companion's task logs (webui.agent.logs) cost, line by line, at each place a line passes.

    python bench/agent_logs_cost.py --redis redis://127.0.0.1:6379/9 --lines 20000

- the task's thread: a captured `log.info` against the same call reaching only a NullHandler (the publisher's
  buffer is filled, not drained, so no background thread shares the GIL with the loop);
- the process's buffer: Python memory a buffered line holds (tracemalloc);
- Redis: `MEMORY USAGE` of a stream of 10,000 such lines, a line;
- the collector: masking and shaping a line's row (webui.collector.task_logs.rows);
- the database: SQLite bytes a line (`dbstat`: the table and its unique index).

The line is a typical one: `"processed order %d for customer %s in %.2f s"`. Figures: docs/companion.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import tracemalloc
import types
from pathlib import Path

import redis

from webui.agent import logs
from webui.agent.publisher import Publisher
from webui.collector import task_logs
from webui.privacy import Redactor
from webui.store.database import open_database
from webui.store.schema import upgrade

REQUEST = types.SimpleNamespace(id="3f2c1d9e-8c4b-4a51-9a5e-0c8e4d2b7f10", retries=0, hostname="celery@worker-1")
STREAM = "bench:agent-logs"


def log_loop(lines: int) -> float:
    log = logging.getLogger("myapp.tasks")
    began = time.perf_counter()
    for i in range(lines):
        log.info("processed order %d for customer %s in %.2f s", i, "acme-corp", 0.42)
    return (time.perf_counter() - began) / lines


def captured(url: str, lines: int, traced: bool) -> tuple[float, list[dict]]:
    """(seconds a line, or with `traced` bytes a line held, the records buffered)."""
    publisher = Publisher(url, STREAM, 10**6, 10**7)
    publisher._thread = object()  # type: ignore[assignment]  # buffer only: nothing drains it here
    handler = logs.TaskLogHandler(publisher, 10**9, 10**12)
    logging.getLogger().addHandler(handler)
    handler.start(REQUEST)
    if traced:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        log_loop(lines)
        figure = (tracemalloc.get_traced_memory()[0] - before) / lines
        tracemalloc.stop()
    else:
        figure = log_loop(lines)
    handler.stop()
    logging.getLogger().removeHandler(handler)
    return figure, list(publisher._buffer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--lines", type=int, default=20_000)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.INFO)

    null = logging.NullHandler()
    logging.getLogger().addHandler(null)
    baseline = log_loop(args.lines)
    logging.getLogger().removeHandler(null)
    per_line, records = captured(args.redis, args.lines, traced=False)
    held, _ = captured(args.redis, args.lines, traced=True)  # apart: tracemalloc slows the loop it measures
    print(f"task thread: {per_line * 1e6:.1f} us a captured line, {baseline * 1e6:.1f} us to a NullHandler")
    print(f"buffer: {held:.0f} bytes of Python memory a buffered line")

    sample = records[:10_000]
    client = redis.Redis.from_url(args.redis)
    client.delete(STREAM)
    pipe = client.pipeline(transaction=False)
    for record in sample:
        pipe.xadd(STREAM, {"r": json.dumps(record, default=repr)})
    pipe.execute()
    print(f"redis: {client.memory_usage(STREAM, samples=0) / len(sample):.0f} bytes a line "
          f"({len(json.dumps(sample[0]))} bytes of JSON)")
    client.delete(STREAM)

    for record in sample:
        record["local_received"] = time.time()
    redactor = Redactor()
    began = time.perf_counter()
    found = task_logs.rows(sample, {REQUEST.id: 1}, redactor)
    print(f"collector: {(time.perf_counter() - began) / len(sample) * 1e6:.1f} us a line to mask and shape")

    with tempfile.TemporaryDirectory() as folder:
        db = open_database(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")
        upgrade(db)
        with db.atomic():
            task_logs.write(db, found)
        size = db.execute_sql("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE '%task_log%'").fetchone()[0]
        print(f"database: {size / len(sample):.0f} bytes a line in SQLite (table and unique index)")
        db.close()


if __name__ == "__main__":
    main()
