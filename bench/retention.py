"""Retention under a steady load: the database stays bounded, and pruning holds the write lock briefly.

    python bench/retention.py [--days 120] [--tasks-per-day 10000] [--database sqlite:///…|postgresql://…]

Simulates `--days` days of steady load through the collector's own writer: every simulated hour its share of
tasks (task-sent, -received, -started, then -succeeded, or -failed with a 1.5 KB traceback for 5 %; 0.1 % stay
STARTED for ever, `--stuck`), stamped with that hour's times, while a pruner thread runs
`webui.store.retention.prune` for the simulated "now" after every simulated hour, with the default retention
(30 days, failures 90, events 7, rollups 400) unless told otherwise. The writer runs on, ingesting the next
hour, while a pass prunes the last.

Printed every `--report-every` simulated days: rows and megabytes (indexes included) of tasks, events and
rollups, the pages in use and the file on disk; then how long each prune batch held its write transaction
(p50/p95/max, by kind), and the writer's commit times while a batch ran and otherwise. On PostgreSQL it runs a
plain VACUUM of those tables once a simulated day, the work autovacuum does many times over a real day.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from webui.collector.writer import CollectorStats, Writer  # noqa: E402
from webui.privacy import Redactor  # noqa: E402
from webui.store import retention  # noqa: E402
from webui.store.database import bind_models, is_sqlite, open_database  # noqa: E402
from webui.store.schema import current_version, upgrade  # noqa: E402

DAY, HOUR = 86_400.0, 3600.0
TRACEBACK = "Traceback (most recent call last):\n" + "  File \"/app/proj/tasks.py\", line 42, in run\n" * 24
START = 1_700_006_400.0  # a midnight, UTC
TABLES = ("task", "task_event", "task_minute")


def hour_of_tasks(rng: random.Random, start: float, count: int, names: int,
                  stuck: float = 0.001) -> list[tuple[list[dict], float]]:
    """One message per task (its four events), spread over the hour that begins at `start`."""
    messages = []
    for i in range(count):
        task_id, ts = str(uuid.uuid4()), start + (i + rng.random()) * HOUR / count
        common = {"uuid": task_id, "hostname": f"celery@worker-{i % 4}", "pid": 100 + i % 8}
        name = f"proj.tasks.task_{rng.randrange(names)}"
        runtime = rng.lognormvariate(-2, 1.2)
        events = [
            {"type": "task-sent", "timestamp": ts, "name": name, "args": f"({i}, 'user-{i % 97}')",
             "kwargs": "{'notify': True}", "retries": 0, "root_id": task_id, "queue": "celery", **common},
            {"type": "task-received", "timestamp": ts + 0.01, "name": name, "args": f"({i}, 'user-{i % 97}')",
             "kwargs": "{'notify': True}", "retries": 0, **common},
            {"type": "task-started", "timestamp": ts + 0.02, **common},
        ]
        roll = rng.random()
        if roll < 0.05:
            events.append({"type": "task-failed", "timestamp": ts + 0.02 + runtime, "exception": "ValueError('no')",
                           "traceback": TRACEBACK, **common})
        elif roll >= 0.05 + stuck:  # between the two: never finished (its worker died, say), never pruned
            events.append({"type": "task-succeeded", "timestamp": ts + 0.02 + runtime, "result": f"'{i * 7}'",
                           "runtime": runtime, **common})
        messages.append((events, ts + 0.03 + runtime))
    return messages


class Pruner(threading.Thread):
    """Prunes for the simulated now after each simulated hour, recording every batch."""

    def __init__(self, db: Any, policy: retention.Retention, clock: list[float]) -> None:
        super().__init__(name="bench-pruner", daemon=True)
        self.db, self.policy, self.clock = db, policy, clock
        self.done_upto = 0.0
        self.batches: list[tuple[float, float, dict[str, int], str]] = []  # (start, held, deleted, kind)
        self.busy = 0.0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.db.connection_context():
                while not self.stop.is_set():
                    target = self.clock[0]
                    if target <= self.done_upto:
                        self.stop.wait(0.005)
                        continue
                    started = time.perf_counter()
                    retention.prune(self.db, self.policy, target, on_batch=self._record)
                    self.busy += time.perf_counter() - started
                    self.done_upto = target
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def _record(self, batch: retention.Batch) -> None:
        kind = ("event batches" if batch.step.startswith("events") else
                "task batches" if "tasks last heard of" in batch.step else "other batches")
        self.batches.append((time.perf_counter() - batch.held, batch.held, batch.deleted, kind))


def size(db: Any, database: str) -> dict[str, float]:
    if is_sqlite(db):
        path = database.removeprefix("sqlite:///")
        on_disk = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        pages, free, page = (db.execute_sql(f"PRAGMA {n}").fetchone()[0]
                             for n in ("page_count", "freelist_count", "page_size"))
        tables = dict(db.execute_sql("SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m "
                                     "ON m.name = d.name GROUP BY m.tbl_name").fetchall())
        return {"disk": on_disk, "used": (pages - free) * page, **tables}
    total = db.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0]
    tables = {t: db.execute_sql(f"SELECT pg_total_relation_size('{t}')").fetchone()[0] for t in TABLES}
    return {"disk": total, "used": total, **tables}


def counts(db: Any) -> dict[str, int]:
    return {table: db.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("task", "task_event", "task_minute")}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--tasks-per-day", type=int, default=10_000)
    parser.add_argument("--names", type=int, default=10, help="task names (rollup rows grow with them)")
    parser.add_argument("--stuck", type=float, default=0.001, help="share of tasks left STARTED for ever")
    parser.add_argument("--database", help="default: SQLite in a temporary directory")
    parser.add_argument("--report-every", type=int, default=10, help="simulated days between size lines")
    parser.add_argument("--retention-days", type=int, default=30)
    parser.add_argument("--failed-retention-days", type=int, default=90)
    parser.add_argument("--event-retention-days", type=int, default=7)
    parser.add_argument("--rollup-retention-days", type=int, default=400)
    parser.add_argument("--prune-batch", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = args.database or f"sqlite:///{os.path.join(tmp, 'retention.sqlite3')}"
        return run(args, database)


def run(args: argparse.Namespace, database: str) -> int:
    rng = random.Random(args.seed)
    db = open_database(database)
    upgrade(db)
    bind_models(db)  # pruning advances /metrics' checkpoint first, through the models
    policy = retention.Retention(tasks=args.retention_days, failed=args.failed_retention_days,
                                 events=args.event_retention_days, rollups=args.rollup_retention_days,
                                 batch=args.prune_batch)
    clock = [START]
    writer = Writer(db, Redactor(), CollectorStats(leader="bench"), clock=lambda: clock[0])
    commits: list[tuple[float, float]] = []
    commit = writer._commit

    def timed_commit(batch: Any, tick: bool) -> None:
        started = time.perf_counter()
        commit(batch, tick)
        commits.append((started, time.perf_counter() - started))

    writer._commit = timed_commit  # type: ignore[method-assign]
    writer.start()
    writer.leading.wait(10)
    pruner = Pruner(db, policy, clock)
    pruner.start()
    per_hour = max(1, args.tasks_per_day // 24)
    print(f"{args.days} simulated days of {per_hour * 24:,} tasks/day, {args.names} task names, retention "
          f"{policy.tasks}/{policy.failed}/{policy.events}/{policy.rollups} days (tasks/failures/events/rollups), "
          f"batches of {policy.batch}, on {database.split(':')[0]} (schema v{current_version(db)})")
    print(f"{'day':>4} {'tasks':>9} {'events':>10} {'rollups':>8} | {'tasks MB':>8} {'events MB':>9} "
          f"{'rollups MB':>10} {'other MB':>8} {'in use MB':>9} {'on disk MB':>10} | {'batches':>7} {'real s':>6}")
    began = time.perf_counter()
    with db.connection_context():
        for day in range(args.days):
            for hour in range(24):
                start = START + day * DAY + hour * HOUR
                for events, received in hour_of_tasks(rng, start, per_hour, args.names, args.stuck):
                    writer.put_events(events, received)
                while writer.pending() > 20_000:
                    time.sleep(0.005)
                clock[0] = start + HOUR
                # The pruner may be one pass behind, never more: the load is steady, so must pruning be.
                while pruner.done_upto < clock[0] - HOUR and pruner.is_alive():
                    time.sleep(0.002)
            if not is_sqlite(db):
                # Autovacuum wakes every minute and would have run many times in a real day; here a day lasts
                # seconds, so do its work (a plain VACUUM: dead rows' space becomes reusable) once a day.
                for table in TABLES:
                    db.execute_sql(f"VACUUM {table}")
            if (day + 1) % args.report_every == 0 or day == 0 or day + 1 == args.days:
                while (writer.pending() or pruner.done_upto < clock[0]) and pruner.is_alive():
                    time.sleep(0.01)
                s, c = size(db, database), counts(db)
                mb = {t: s.get(t, 0) / 1e6 for t in TABLES}
                print(f"{day + 1:>4} {c['task']:>9,} {c['task_event']:>10,} {c['task_minute']:>8,} | "
                      f"{mb['task']:>8.1f} {mb['task_event']:>9.1f} {mb['task_minute']:>10.1f} "
                      f"{s['used'] / 1e6 - sum(mb.values()):>8.1f} {s['used'] / 1e6:>9.1f} {s['disk'] / 1e6:>10.1f} "
                      f"| {len(pruner.batches):>7,} {time.perf_counter() - began:>6.0f}", flush=True)
            if pruner.error is not None:
                raise pruner.error
    pruner.stop.set()
    pruner.join()
    writer.stop(60)
    report(pruner, commits, time.perf_counter() - began)
    getattr(db, "close_all", db.close)()
    return 0


def report(pruner: Pruner, commits: list[tuple[float, float]], elapsed: float) -> None:
    working = [(start, held) for start, held, _, _ in pruner.batches if held]
    print()
    for kind in ("event batches", "task batches", "other batches", "all batches"):
        batches = [b for b in pruner.batches if b[1] and kind in ("all batches", b[3])]
        if not batches:
            continue
        held = [b[1] * 1000 for b in batches]
        rows = [sum(b[2].values()) for b in batches]
        print(f"{kind}: {len(batches):,}, {sum(rows):,} rows deleted (at most {max(rows):,} in one); write "
              f"transaction held p50 {percentile(held, 0.5):.1f} ms, p95 {percentile(held, 0.95):.1f} ms, "
              f"max {max(held):.1f} ms")
    print(f"pruner busy {pruner.busy:.0f} s of {elapsed:.0f} s (pauses between batches included)")
    spans = sorted(working)
    during, otherwise = [], []
    for start, duration in commits:
        overlaps = any(s < start + duration and start < s + h for s, h in spans[max(0, _bisect(spans, start) - 2):
                                                                              _bisect(spans, start) + 2])
        (during if overlaps else otherwise).append(duration * 1000)
    for label, values in (("while a prune batch ran", during), ("otherwise", otherwise)):
        if values:
            print(f"writer commits {label}: {len(values):,}, p50 {statistics.median(values):.1f} ms, "
                  f"p95 {percentile(values, 0.95):.1f} ms, max {max(values):.1f} ms")


def _bisect(spans: list[tuple[float, float]], at: float) -> int:
    lo, hi = 0, len(spans)
    while lo < hi:
        mid = (lo + hi) // 2
        if spans[mid][0] < at:
            lo = mid + 1
        else:
            hi = mid
    return lo


if __name__ == "__main__":
    sys.exit(main())
