"""How fast the tasks page and `/api/v1/tasks` answer with millions of tasks stored, and the other pages too.

    python bench/task_list.py                         # 1,000,000 tasks in a temporary SQLite file
    python bench/task_list.py --tasks 200000 --runs 50
    python bench/task_list.py --database sqlite:///bench/out/tasks-1m.sqlite3            # fill and keep it…
    python bench/task_list.py --database sqlite:///bench/out/tasks-1m.sqlite3 --reuse    # …and time it again
    python bench/task_list.py --tasks 10000000 \\
        --database postgresql://postgres@127.0.0.1:5432/webui_bench_10m                  # created if missing
    python bench/task_list.py --database postgresql://postgres@127.0.0.1:5432/webui_bench_10m --reuse --pages

Fills the store with realistic finished tasks (30 task names with a skewed mix, 8 workers, 4 queues, 5%
failures with exceptions, 3% retries, args holding ids and e-mail addresses, 20 tasks a second ending now),
in id order as the collector writes them, with what the other pages read beside them: 4 events per task in
`task_event`, the per-minute rollups in `task_minute` (summed from those events, as the writer counts them),
8 workers and a queue sample per queue every 10 s (at most 7 days). SQLite rows are made in Python; on
PostgreSQL every table is filled server-side (`INSERT … SELECT generate_series`), with the indexes built
after the rows and then `VACUUM ANALYZE` (autovacuum's work). SQLite gets no `ANALYZE`: the app never runs
one, so the bench reads the store as a user's would be.

Then it times, through the Flask app (query + template or JSON, no network), GET /tasks?<filter> and
GET /api/v1/tasks?<filter> for each filter in FILTERS, `--runs` times each after one warm-up, and prints p50,
p95 and max in milliseconds, with how many rows came back and whether the walk's time budget cut the page
short. `--pages` times every other page as well (`pages()`). Time is anchored to the stored data: the process's
clock is set back so that "now" is when the newest stored task arrived, so windows such as "the last 15
minutes" and the overview's last hour hold what they held right after the fill, however old the store is.
Target (scale issue): p95 < 100 ms for the first page of any filter, at 1,000,000 tasks on SQLite and
10,000,000 on PostgreSQL.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from webui.app import create_app  # noqa: E402
from webui.collector.rollups import BUCKET_COLUMNS, RUNTIME_BOUNDS  # noqa: E402
from webui.settings import default_settings  # noqa: E402
from webui.store.database import is_sqlite, open_database  # noqa: E402
from webui.store.schema import upgrade  # noqa: E402

NAMES = [f"proj.tasks.{verb}_{noun}" for verb in ("send", "build", "sync", "charge", "resize")
         for noun in ("mail", "report", "invoice", "thumbnail", "account", "search_index")]
WEIGHTS = [1.0 / (i + 1) for i in range(len(NAMES))]  # a few names do most of the work
WORKERS = [f"celery@worker-{i}" for i in range(8)]
QUEUES = ["celery", "mail", "reports", "media"]
CLIENT = "gen4242@web-1"
TRACEBACK = "Traceback (most recent call last):\n  File ...\nValueError: invalid record"
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
STEP = 1_000_000  # task ids per statement of the server-side fill, and per progress line
QUEUE_SAMPLE_EVERY = 10.0  # seconds, the collector's default `queue_sample_interval`
QUEUE_SAMPLES_KEPT = 7 * 86_400.0


# -- the store ----------------------------------------------------------------------------------------------

def open_store(database: str, reuse: bool) -> Any:
    """The database at `database`, upgraded; a PostgreSQL database is created when missing. Without `reuse`
    it must hold no tasks yet (the bench never deletes anyone's rows)."""
    if urlsplit(database).scheme in ("postgres", "postgresql"):
        _create_postgresql_database(database)
    db = open_database(database)
    upgrade(db)
    with db.connection_context():
        has_tasks = db.execute_sql("SELECT 1 FROM task LIMIT 1").fetchone() is not None
    if reuse and not has_tasks:
        raise SystemExit(f"--reuse: {database} holds no tasks; fill it first (leave out --reuse)")
    if not reuse and has_tasks:
        raise SystemExit(f"{database} already holds tasks: add --reuse to time them, or give an empty database")
    return db


def _create_postgresql_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres", query=""))
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def fill(db: Any, tasks: int, seed: int = 1, rate: float = 20.0) -> list[tuple[str, float]]:
    """Store `tasks` finished tasks, `rate` a second ending now, and what the other pages read; returns
    (step, seconds) for each step of the fill."""
    now = time.time()
    start = now - tasks / rate
    steps: list[tuple[str, float]] = []

    def step(label: str, action: Callable[[], object]) -> None:
        began = time.perf_counter()
        action()
        steps.append((label, time.perf_counter() - began))
        print(f"  {label}: {steps[-1][1]:,.0f} s", flush=True)

    sqlite = is_sqlite(db)
    with db.connection_context():
        if not sqlite:
            # This session only: bulk-load settings (the rows are committed all the same before we report).
            for setting in ("synchronous_commit = off", "maintenance_work_mem = '1GB'", "work_mem = '256MB'"):
                db.execute_sql(f"SET {setting}")
            db.execute_sql("SELECT setseed(%s)", (1.0 / (seed + 1),))
        indexes = _drop_indexes(db, ("task", "task_event"))
        try:
            step("tasks", lambda: (_tasks_python if sqlite else _tasks_sql)(db, tasks, start, 1.0 / rate, seed))
            step("task events", lambda: _events(db, tasks))
        finally:  # even after a failure: the schema must stay whole
            step("indexes", lambda: [db.execute_sql(statement) for statement in indexes])
        step("rollups", lambda: _rollups(db))
        step("workers, queue samples", lambda: _workers_and_queues(db, tasks, start, now, seed))
        if not sqlite:
            step("vacuum analyze", lambda: [db.execute_sql(f"VACUUM ANALYZE {table}") for table in
                                            ("task", "task_event", "task_minute", "queue_sample", "worker")])
    return steps


def _drop_indexes(db: Any, tables: tuple[str, ...]) -> list[str]:
    """Drop the indexes of `tables` that no constraint holds; returns the statements that make them again."""
    if is_sqlite(db):
        query = (f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                 f"AND tbl_name IN ({', '.join('?' * len(tables))})")
    else:
        query = (f"SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                 f"AND tablename IN ({', '.join(['%s'] * len(tables))}) "
                 "AND indexname NOT IN (SELECT conname FROM pg_constraint)")
    found = list(db.execute_sql(query, tables).fetchall())
    for name, _ in found:
        db.execute_sql(f'DROP INDEX "{name}"')
    return [definition for _, definition in found]


_TASK_COLUMNS = ("id", "uuid", "name", "state", "args", "kwargs", "result", "exception", "traceback", "worker",
                 "queue", "exchange", "routing_key", "retries", "sent_at", "received_at", "started_at",
                 "succeeded_at", "failed_at", "runtime", "attempt", "delivery", "rank", "started_attempt",
                 "started_delivery", "starts", "executions", "event_count", "updated_at")


def _tasks_python(db: Any, tasks: int, start: float, interval: float, seed: int) -> None:
    rng = random.Random(seed)
    p = db.param
    sql = f"INSERT INTO task ({', '.join(_TASK_COLUMNS)}) VALUES ({', '.join([p] * len(_TASK_COLUMNS))})"
    batch = []
    for i in range(1, tasks + 1):
        name = rng.choices(NAMES, WEIGHTS)[0]
        roll = rng.random()
        state = "FAILURE" if roll < 0.05 else "RETRY" if roll < 0.08 else "SUCCESS"
        sent = start + i * interval
        runtime = rng.lognormvariate(-1.5, 1.3)
        failed = state == "FAILURE"
        batch.append((
            i, str(uuid.UUID(int=rng.getrandbits(128))), name, state,
            f"({rng.randrange(10**6)}, 'user-{rng.randrange(10**5)}@example.com')",
            f"{{'attempt': {rng.randrange(3)}, 'priority': 'normal'}}",
            None if failed else f"{{'ok': True, 'count': {rng.randrange(1000)}}}",
            f"ValueError('invalid record {rng.randrange(10**6)}')" if failed else None,
            TRACEBACK if failed else None,
            rng.choice(WORKERS), rng.choice(QUEUES), "", "celery", 1 if state == "RETRY" else 0,
            sent, sent + 0.01, sent + 0.02, None if failed else sent + 0.02 + runtime,
            sent + 0.02 + runtime if failed else None, runtime, 0, 0, 3, 0, 0, 1, 1, 4, sent + 0.02 + runtime,
        ))
        if len(batch) == 20000 or i == tasks:
            with db.atomic():
                db.cursor().executemany(sql, batch)
            batch = []
        if i % STEP == 0:
            print(f"    {i:,} tasks", flush=True)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _tasks_sql(db: Any, tasks: int, start: float, interval: float, seed: int) -> None:
    """The same mix as `_tasks_python`, made by PostgreSQL itself, `STEP` ids per statement."""
    names = "ARRAY[" + ", ".join(map(_sql_text, NAMES)) + "]"
    total = sum(WEIGHTS)
    bounds = "ARRAY[" + ", ".join(repr(sum(WEIGHTS[:k]) / total) for k in range(1, len(NAMES))) + "]::float8[]"
    queues = "ARRAY[" + ", ".join(map(_sql_text, QUEUES)) + "]"
    sql = f"""
        INSERT INTO task ({', '.join(_TASK_COLUMNS)})
        SELECT i, md5({seed} || ':' || i)::uuid::text, ({names})[1 + width_bucket(r_name, {bounds})], state,
               '(' || n_arg || ', ''user-' || n_user || '@example.com'')',
               '{{''attempt'': ' || n_attempt || ', ''priority'': ''normal''}}',
               CASE WHEN state = 'FAILURE' THEN NULL ELSE '{{''ok'': True, ''count'': ' || n_count || '}}' END,
               CASE WHEN state = 'FAILURE' THEN 'ValueError(''invalid record ' || n_record || ''')' END,
               CASE WHEN state = 'FAILURE' THEN {_sql_text(TRACEBACK)} END,
               'celery@worker-' || n_worker, ({queues})[1 + n_queue], '', 'celery',
               CASE WHEN state = 'RETRY' THEN 1 ELSE 0 END,
               sent, sent + 0.01, sent + 0.02,
               CASE WHEN state = 'FAILURE' THEN NULL ELSE sent + 0.02 + runtime END,
               CASE WHEN state = 'FAILURE' THEN sent + 0.02 + runtime END,
               runtime, 0, 0, 3, 0, 0, 1, 1, 4, sent + 0.02 + runtime
        FROM (SELECT *, CASE WHEN r_state < 0.05 THEN 'FAILURE' WHEN r_state < 0.08 THEN 'RETRY'
                             ELSE 'SUCCESS' END AS state,
                     exp(-1.5 + 1.3 * sqrt(-2 * ln(1 - u1)) * cos(2 * pi() * u2)) AS runtime
              FROM (SELECT i, random() AS r_name, random() AS r_state, random() AS u1, random() AS u2,
                           floor(random() * 1e6)::int AS n_arg, floor(random() * 1e5)::int AS n_user,
                           floor(random() * 3)::int AS n_attempt, floor(random() * 1000)::int AS n_count,
                           floor(random() * 1e6)::int AS n_record, floor(random() * 8)::int AS n_worker,
                           floor(random() * 4)::int AS n_queue, %s::float8 + i * %s::float8 AS sent
                    FROM generate_series(%s::int, %s::int) AS i OFFSET 0) AS drawn OFFSET 0) AS task_rows"""
    for low in range(1, tasks + 1, STEP):
        high = min(tasks, low + STEP - 1)
        with db.atomic():
            db.execute_sql(sql, (start, interval, low, high))
        print(f"    {high:,} tasks", flush=True)


_EVENT_TIME = ("CASE e.seq WHEN 0 THEN t.sent_at WHEN 1 THEN t.received_at WHEN 2 THEN t.started_at "
               "ELSE t.updated_at END")


def _events(db: Any, tasks: int) -> None:
    """Four events a task, as the writer logs them: sent (from the client), received, started, and the outcome
    (from the worker); the retry's exception in the event's data, the rest in the task row."""
    p = db.param
    retry_data = _sql_text(json.dumps({"exception": "ValueError('try again')", "traceback": TRACEBACK}))
    sql = f"""
        INSERT INTO task_event (task_id, seq, type, timestamp, received, hostname, pid, clock, source, data)
        SELECT t.id, e.seq,
               CASE WHEN e.seq = 0 THEN 'task-sent' WHEN e.seq = 1 THEN 'task-received'
                    WHEN e.seq = 2 THEN 'task-started' WHEN t.state = 'FAILURE' THEN 'task-failed'
                    WHEN t.state = 'RETRY' THEN 'task-retried' ELSE 'task-succeeded' END,
               {_EVENT_TIME}, {_EVENT_TIME} + 0.005,
               CASE WHEN e.seq = 0 THEN {_sql_text(CLIENT)} ELSE t.worker END,
               CASE WHEN e.seq = 0 THEN 4242 ELSE 1000 + t.id - 16 * (t.id / 16) END, 4 * t.id + e.seq, NULL,
               CASE WHEN e.seq = 3 AND t.state = 'RETRY' THEN {retry_data} END
        FROM task AS t CROSS JOIN (SELECT 0 AS seq UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) AS e
        WHERE t.id BETWEEN {p} AND {p}
        ORDER BY t.id, e.seq"""
    for low in range(1, tasks + 1, STEP):
        high = min(tasks, low + STEP - 1)
        with db.atomic():
            db.execute_sql(sql, (low, high))
        print(f"    events of {high:,} tasks", flush=True)


def _rollups(db: Any) -> None:
    """`task_minute` as the writer would have counted the stored events: received, started and the outcome,
    each in its own minute, with the runtime histogram of the successes."""
    def minute(column: str) -> str:
        if is_sqlite(db):
            return f"CAST({column} / 60 AS INTEGER) * 60"
        return f"CAST(floor({column} / 60) * 60 AS BIGINT)"

    bucket = ("CASE " + " ".join(f"WHEN runtime <= {bound!r} THEN {i}" for i, bound in enumerate(RUNTIME_BOUNDS))
              + f" ELSE {len(RUNTIME_BOUNDS)} END")
    success = "CASE WHEN state = 'SUCCESS' THEN 1 ELSE 0 END"
    sums = ", ".join(f"SUM(CASE WHEN bucket = {i} THEN 1 ELSE 0 END)" for i in range(len(BUCKET_COLUMNS)))
    db.execute_sql(f"""
        INSERT INTO task_minute (minute, name, received, started, succeeded, failed, retried, revoked, rejected,
                                 runtime_sum, runtime_count, {', '.join(BUCKET_COLUMNS)})
        SELECT minute, name, SUM(received), SUM(started), SUM(succeeded), SUM(failed), SUM(retried), 0, 0,
               SUM(runtime_sum), SUM(succeeded), {sums}
        FROM (SELECT {minute('received_at')} AS minute, name, 1 AS received, 0 AS started, 0 AS succeeded,
                     0 AS failed, 0 AS retried, 0.0 AS runtime_sum, -1 AS bucket FROM task
              UNION ALL
              SELECT {minute('started_at')}, name, 0, 1, 0, 0, 0, 0.0, -1 FROM task
              UNION ALL
              SELECT {minute('updated_at')}, name, 0, 0, {success},
                     CASE WHEN state = 'FAILURE' THEN 1 ELSE 0 END, CASE WHEN state = 'RETRY' THEN 1 ELSE 0 END,
                     CASE WHEN state = 'SUCCESS' THEN runtime ELSE 0.0 END,
                     CASE WHEN state = 'SUCCESS' THEN {bucket} ELSE -1 END FROM task) AS counted
        GROUP BY minute, name
        ORDER BY minute, name""")  # the writer adds each minute's rows as it goes: a day's rows sit together


def _workers_and_queues(db: Any, tasks: int, start: float, now: float, seed: int) -> None:
    p = db.param
    rng = random.Random(seed)
    with db.atomic():
        for number, hostname in enumerate(WORKERS, 1):
            db.execute_sql(
                "INSERT INTO worker (hostname, pid, sw_ident, sw_ver, sw_sys, freq, loadavg, processed, active, "
                "online, status_changed_at, first_seen, last_seen, last_heartbeat, heartbeat_timestamp, utcoffset, "
                f"last_task_event_at) VALUES ({', '.join([p] * 17)})",
                (hostname, 1000 + number, "py-celery", "5.7.0", "Linux", 2.0, "[0.52, 0.48, 0.4]",
                 tasks // len(WORKERS), 2, True, start, start, now, now, now, 0, now))
            db.execute_sql("INSERT INTO worker_event (worker_id, online, at, reason) "
                           f"SELECT id, {p}, {p}, {p} FROM worker WHERE hostname = {p}",
                           (True, start, "worker-online", hostname))
        first = max(start, now - QUEUE_SAMPLES_KEPT)
        samples = [(queue, at, rng.randrange(50), None, None, None, None, '{"transport": "redis"}')
                   for at in itertools.takewhile(lambda t: t <= now, itertools.count(first, QUEUE_SAMPLE_EVERY))
                   for queue in QUEUES]
        db.cursor().executemany(
            "INSERT INTO queue_sample (queue, at, depth, ready, unacked, consumers, oldest_age, detail) "
            f"VALUES ({', '.join([p] * 8)})", samples)


# -- timing -------------------------------------------------------------------------------------------------

def anchor_clock(db: Any) -> float:
    """Set this process's `time.time` back to when the newest stored task arrived; returns the shift (s)."""
    with db.connection_context():
        newest = db.execute_sql("SELECT MAX(received_at) FROM task").fetchone()[0]
    shift = time.time() - float(newest)
    if shift > 1.0:
        real = time.time
        time.time = lambda: real() - shift  # every module of the app calls time.time() through the module
    return shift


def percentiles(times: list[float]) -> tuple[float, float, float]:
    times = sorted(times)
    return statistics.median(times), times[max(0, int(round(0.95 * len(times))) - 1)], times[-1]


def timed(client: Any, url: str, runs: int) -> tuple[list[float], Any]:
    """`runs` timings (ms) of GET `url` after one warm-up, and the last response."""
    client.get(url)  # warm the page cache as a user's second visit would
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}: {response.get_data(as_text=True)[:500]}")
    return times, response


def measure_filters(client: Any, runs: int) -> list[dict[str, Any]]:
    """Each filter's first page, as the page and through the API."""
    results = []
    for label, params in FILTERS:
        query = urlencode(params, doseq=True)
        page_times, page = timed(client, "/tasks?" + query, runs)
        body = page.get_data(as_text=True)
        api_times, api = timed(client, "/api/v1/tasks?" + query, runs)
        answer = api.get_json()
        results.append({
            "filter": label, "params": params,
            "page": percentiles(page_times), "page_rows": body.count('class="task-row"'),
            "page_partial": 'id="partial-note"' in body,
            "api": percentiles(api_times), "api_rows": len(answer["tasks"]), "api_partial": answer["partial"],
        })
    return results


def pages(db: Any) -> list[tuple[str, str]]:
    """Every other page and API read a user or a scraper makes, with real names and ids from the store."""
    with db.connection_context():
        newest, oldest = db.execute_sql("SELECT MAX(id), MIN(id) FROM task").fetchone()
        by_id = {i: u for i, u in db.execute_sql(
            f"SELECT id, uuid FROM task WHERE id IN ({db.param}, {db.param})", (newest, (newest + oldest) // 2))}
    middle = by_id[(newest + oldest) // 2]
    return [
        ("overview", "/"),
        ("overview sections (htmx)", "/overview/sections"),
        ("workers", "/workers"),
        ("worker detail", f"/worker/{WORKERS[3]}"),
        ("queues", "/queues"),
        ("queue detail", "/queue/mail"),
        ("events", "/events"),
        ("events: task-failed", "/events?type=task-failed"),
        ("events: common task name", "/events?" + urlencode({"task": NAMES[0]})),
        ("events: rare task name", "/events?" + urlencode({"task": NAMES[-1]})),
        ("events: worker", "/events?" + urlencode({"worker": WORKERS[3]})),
        ("task detail (newest)", f"/task/{by_id[newest]}"),
        ("task detail (middle)", f"/task/{middle}"),
        ("alerts", "/alerts"),
        ("beat", "/beat"),
        ("metrics (warm)", "/metrics"),
        ("/api/tasks?limit=100", "/api/tasks?limit=100"),
        ("/api/tasks?limit=1000", "/api/tasks?limit=1000"),
        ("/api/tasks FAILURE, limit 100", "/api/tasks?state=FAILURE&limit=100"),
        ("/api/tasks rare name, limit 100", "/api/tasks?" + urlencode({"taskname": NAMES[-1], "limit": 100})),
        ("/api/task/types", "/api/task/types"),
        ("/api/task/info (middle)", f"/api/task/info/{middle}"),
        ("/api/workers", "/api/workers"),
        ("/api/v1/tasks/<id>/events", f"/api/v1/tasks/{middle}/events"),
        ("/api/v1/workers", "/api/v1/workers"),
        ("/api/v1/queues", "/api/v1/queues"),
    ]


def measure_pages(client: Any, db: Any, runs: int) -> list[dict[str, Any]]:
    results = []
    began = time.perf_counter()
    first = client.get("/metrics")  # the first scrape of a process sums every settled row once
    results.append({"page": "metrics (first scrape)", "url": "/metrics", "status": first.status_code,
                    "times": ((time.perf_counter() - began) * 1000,) * 3})
    for label, url in pages(db):
        times, response = timed(client, url, runs)
        results.append({"page": label, "url": url, "status": response.status_code, "times": percentiles(times)})
    return results


def report_filters(results: Iterable[dict[str, Any]]) -> None:
    print(f"{'filter':30} {'page p50':>9} {'p95':>7} {'max':>7} {'rows':>5}   {'API p50':>8} {'p95':>7} "
          f"{'max':>7} {'rows':>5}  cut short")
    for r in results:
        short = "page" if r["page_partial"] else ""
        short += (" API" if short else "API") if r["api_partial"] else ""
        print(f"{r['filter']:30} {r['page'][0]:9.1f} {r['page'][1]:7.1f} {r['page'][2]:7.1f} {r['page_rows']:5d}"
              f"   {r['api'][0]:8.1f} {r['api'][1]:7.1f} {r['api'][2]:7.1f} {r['api_rows']:5d}  {short}")


def report_pages(results: Iterable[dict[str, Any]]) -> None:
    print(f"\n{'page':34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for r in results:
        p50, p95, worst = r["times"]
        print(f"{r['page']:34} {p50:8.1f} {p95:8.1f} {worst:8.1f}")


def store_size(db: Any, database: str) -> str:
    if database.startswith("sqlite:///"):
        path = database.removeprefix("sqlite:///")
        size = sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))
        return f"database file: {size / 1e6:,.0f} MB"
    with db.connection_context():
        size = db.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0]
    return f"database: {size / 1e6:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30, help="timed requests per filter (after one warm-up)")
    parser.add_argument("--database", help="sqlite:///PATH or postgresql://… (default: a temporary SQLite file)")
    parser.add_argument("--reuse", action="store_true", help="time the tasks already in --database")
    parser.add_argument("--fill-only", action="store_true", help="fill the store and stop")
    parser.add_argument("--no-filters", action="store_true", help="skip the tasks list and /api/v1/tasks")
    parser.add_argument("--pages", action="store_true", help="also time every other page (see pages())")
    parser.add_argument("--page-runs", type=int, default=10, help="timed requests per page with --pages")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    options = parser.parse_args()
    database = options.database or f"sqlite:///{tempfile.mkdtemp(prefix='webui-bench-')}/tasks.sqlite3"
    db = open_store(database, options.reuse)
    output: dict[str, Any] = {"database": database, "started": time.time()}
    if not options.reuse:
        print(f"filling {options.tasks:,} tasks", flush=True)
        began = time.perf_counter()
        output["fill"] = fill(db, options.tasks)
        print(f"stored {options.tasks:,} tasks in {time.perf_counter() - began:,.0f} s")
    print(store_size(db, database))
    if options.fill_only:
        return
    shift = anchor_clock(db)
    if shift > 1.0:
        print(f"clock anchored to the newest stored task: {shift / 3600:,.1f} h back")
    client = create_app(default_settings(database=database), start_collector=False).test_client()
    if not options.no_filters:
        output["filters"] = measure_filters(client, options.runs)
        report_filters(output["filters"])
    if options.pages:
        output["pages"] = measure_pages(client, db, options.page_runs)
        report_pages(output["pages"])
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(output, indent=2, default=str))


if __name__ == "__main__":
    main()
