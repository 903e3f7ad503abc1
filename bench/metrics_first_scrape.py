"""The first `/metrics` scrape of a new process over a big store, and the leader's checkpoint advance.

    python bench/metrics_first_scrape.py --database postgresql://postgres@127.0.0.1:5432/webui_bench_10m
    python bench/metrics_first_scrape.py --database … --advance --runs 3

Each run is a new Python process (`--child`) that builds the app without a collector, as a gunicorn worker
does, and times its first GET /metrics, then a second one past the 5 s cache (what every later scrape costs).
Pending migrations are applied first (migration 0015 adds the checkpoint's table: nothing is written to the
rows). With `--advance` the checkpoint is advanced once before the runs, as the leading collector does, and
that advance is timed too: on a store that never had one it sums every settled row. Run it from an older
checkout (its `webui` on PYTHONPATH, without `--advance`) for the figures before the checkpoint.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(database: str) -> None:
    from webui.app import create_app
    from webui.settings import default_settings

    app = create_app(default_settings(database=database), start_collector=False)
    client = app.test_client()
    began = time.perf_counter()
    first = client.get("/metrics")
    first_ms = (time.perf_counter() - began) * 1000
    app.extensions["webui_metrics"].at = float("-inf")  # past the cache: the steady state
    began = time.perf_counter()
    client.get("/metrics")
    print(json.dumps({"status": first.status_code, "first_ms": first_ms,
                      "next_ms": (time.perf_counter() - began) * 1000}))


def migrate(database: str) -> None:
    from webui.store.database import open_database
    from webui.store.schema import upgrade

    upgrade(open_database(database))


def advance(database: str) -> float:
    from webui.settings import default_settings
    from webui.store import metrics_checkpoint
    from webui.store.database import bind_models, open_database

    db = open_database(database)
    bind_models(db)
    bounds = tuple(float(b) for b in default_settings().metrics_wait_buckets)
    with db.connection_context():
        began = time.perf_counter()
        metrics_checkpoint.advance(db, bounds, time.time())
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--runs", type=int, default=3, help="new processes, each timing its first scrape")
    parser.add_argument("--advance", action="store_true", help="advance the checkpoint first, as the leader does")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.database)
        return
    migrate(options.database)
    if options.advance:
        print(f"checkpoint advanced in {advance(options.database):.2f} s")
    for run in range(options.runs):
        out = subprocess.run([sys.executable, __file__, "--child", "--database", options.database],
                             check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(f"run {run + 1}: status {result['status']}, first scrape {result['first_ms']:,.0f} ms, "
              f"next {result['next_ms']:,.1f} ms")


if __name__ == "__main__":
    main()
