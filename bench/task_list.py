"""How fast the tasks page answers with a million tasks stored: the first page of each filter, end to end.

    python bench/task_list.py                         # 1,000,000 tasks in a temporary SQLite file
    python bench/task_list.py --tasks 200000 --runs 50
    python bench/task_list.py --database sqlite:///bench/out/tasks-1m.sqlite3 --reuse   # keep and reuse the file
    python bench/task_list.py --database postgresql://postgres@127.0.0.1:5432/test     # a fresh database there

Fills the store with realistic finished tasks (30 task names with a skewed mix, 8 workers, 4 queues, 5%
failures with exceptions, 3% retries, args holding ids and e-mail addresses), written in id order as the
collector does, then times GET /tasks?<filter> through the Flask app (query + template, no network) for
each filter in FILTERS, `--runs` times each, and prints p50, p95 and max in milliseconds, with how many rows
the page showed and whether the walk's time budget cut it short. Target (dashboard issue): p95 < 100 ms on
SQLite for the first page of any filter or search.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from webui.app import create_app  # noqa: E402
from webui.settings import default_settings  # noqa: E402
from webui.store.database import is_sqlite, open_database  # noqa: E402
from webui.store.schema import upgrade  # noqa: E402

NAMES = [f"proj.tasks.{verb}_{noun}" for verb in ("send", "build", "sync", "charge", "resize")
         for noun in ("mail", "report", "invoice", "thumbnail", "account", "search_index")]
WORKERS = [f"celery@worker-{i}" for i in range(8)]
QUEUES = ["celery", "mail", "reports", "media"]
NOW = time.time()
FILTERS: list[tuple[str, dict[str, object]]] = [
    ("no filter", {}),
    ("state FAILURE", {"state": "FAILURE"}),
    ("state FAILURE,RETRY", {"state": ["FAILURE", "RETRY"]}),
    ("state STARTED (none stored)", {"state": "STARTED"}),
    ("common name", {"name": NAMES[0]}),
    ("rare name", {"name": NAMES[-1]}),
    ("unknown name", {"name": "proj.tasks.never_seen"}),
    ("worker", {"worker": WORKERS[3]}),
    ("queue + state", {"queue": "mail", "state": "FAILURE"}),
    ("last 15 min", {"range": "15m"}),
    ("finished in the last hour", {"range": "1h", "time_field": "finished"}),
    ("runtime > 10 s", {"runtime_min": "10"}),
    ("slowest first", {"sort": "slowest"}),
    ("slowest FAILURE", {"sort": "slowest", "state": "FAILURE"}),
    ("search common text", {"q": "example.com"}),
    ("search rare text", {"q": "user-777@"}),
    ("search absent text", {"q": "no-such-text"}),
    ("search + state", {"q": "ValueError", "state": "FAILURE"}),
    ("name + search + range", {"name": NAMES[1], "q": "user-1", "range": "24h"}),
]


def fill(db, tasks: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(len(NAMES))]  # a few names do most of the work
    columns = ("id", "uuid", "name", "state", "args", "kwargs", "result", "exception", "traceback", "worker",
               "queue", "exchange", "routing_key", "retries", "sent_at", "received_at", "started_at",
               "succeeded_at", "failed_at", "runtime", "attempt", "delivery", "rank", "started_attempt",
               "started_delivery", "starts", "executions", "event_count", "updated_at")
    p = db.param
    sql = f"INSERT INTO task ({', '.join(columns)}) VALUES ({', '.join([p] * len(columns))})"
    start = NOW - tasks * 0.05  # 20 tasks a second, ending now
    batch = []
    with db.connection_context():
        for i in range(1, tasks + 1):
            name = rng.choices(NAMES, weights)[0]
            roll = rng.random()
            state = "FAILURE" if roll < 0.05 else "RETRY" if roll < 0.08 else "SUCCESS"
            sent = start + i * 0.05
            runtime = rng.lognormvariate(-1.5, 1.3)
            failed = state == "FAILURE"
            batch.append((
                i, str(uuid.UUID(int=rng.getrandbits(128))), name, state,
                f"({rng.randrange(10**6)}, 'user-{rng.randrange(10**5)}@example.com')",
                f"{{'attempt': {rng.randrange(3)}, 'priority': 'normal'}}",
                None if failed else f"{{'ok': True, 'count': {rng.randrange(1000)}}}",
                f"ValueError('invalid record {rng.randrange(10**6)}')" if failed else None,
                "Traceback (most recent call last):\n  File ...\nValueError: invalid record" if failed else None,
                rng.choice(WORKERS), rng.choice(QUEUES), "", "celery", 1 if state == "RETRY" else 0,
                sent, sent + 0.01, sent + 0.02, None if failed else sent + 0.02 + runtime,
                sent + 0.02 + runtime if failed else None, runtime, 0, 0, 3, 0, 0, 1, 1, 4, sent + 0.02 + runtime,
            ))
            if len(batch) == 20000:
                with db.atomic():
                    db.cursor().executemany(sql, batch)
                batch = []
        if batch:
            with db.atomic():
                db.cursor().executemany(sql, batch)
        if is_sqlite(db):
            db.execute_sql("ANALYZE")


def measure(database: str, runs: int) -> list[tuple[str, float, float, float, int, bool]]:
    app = create_app(default_settings(database=database), start_collector=False)
    client = app.test_client()
    results = []
    for label, params in FILTERS:
        url = "/tasks?" + urlencode(params, doseq=True)
        client.get(url)  # warm the page cache as a user's second visit would
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        body = response.get_data(as_text=True)
        rows, partial = body.count('class="task-row"'), 'id="partial-note"' in body
        times.sort()
        p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
        results.append((label, statistics.median(times), p95, times[-1], rows, partial))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database", help="sqlite:///PATH or postgresql://… (default: a temporary SQLite file)")
    parser.add_argument("--reuse", action="store_true", help="use the tasks already in --database")
    options = parser.parse_args()
    database = options.database or f"sqlite:///{tempfile.mkdtemp(prefix='webui-bench-')}/tasks.sqlite3"
    db = open_database(database)
    upgrade(db)
    if not options.reuse:
        started = time.perf_counter()
        fill(db, options.tasks)
        print(f"stored {options.tasks:,} tasks in {time.perf_counter() - started:.0f} s")
    if database.startswith("sqlite:///"):
        path = database.removeprefix("sqlite:///")
        print(f"database file: {os.path.getsize(path) / 1e6:,.0f} MB")
    print(f"{'filter':32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'rows':>5}  cut short")
    for label, p50, p95, worst, rows, partial in measure(database, options.runs):
        print(f"{label:32} {p50:8.1f} {p95:8.1f} {worst:8.1f} {rows:5d}  {'yes' if partial else ''}")


if __name__ == "__main__":
    main()
