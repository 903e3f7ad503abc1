#!/usr/bin/env python
"""CPU per request, in-process: the routes live pages and pollers hit most, through Flask's test client.

    python bench/request_cost.py                       # 500 of each default route on a 20,000-task SQLite store
    python bench/request_cost.py --runs 200 --route '/tasks' --route '/api/workers'
    python bench/request_cost.py --profile             # and cProfile the last route

CPU time of this process (not wall time), so a busy machine changes the figures less than it changes
latencies. The store is filled once by bench/task_list.py's `fill` and kept in `--store`. Figures:
docs/performance.md ("Many people at once").
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import task_list  # noqa: E402  (the fill)

ROUTES = ("/tasks/new?newest=1", "/api/v1/tasks?limit=50", "/api/tasks?limit=100&state=FAILURE", "/api/workers",
          "/tasks")
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


def store(path: Path, tasks: int) -> str:
    from webui.store.database import bind_models, open_database
    from webui.store.schema import upgrade

    url = f"sqlite:///{path}"
    if not path.exists():
        db = open_database(url)
        upgrade(db)
        bind_models(db)
        task_list.fill(db, tasks)
        db.close_all()
    return url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=Path("bench/out/request-cost.sqlite3"))
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--route", action="append", help="a path to time; repeatable (default: the five above)")
    parser.add_argument("--profile", action="store_true", help="cProfile the last route afterwards")
    parser.add_argument("--sort", default="cumulative", help="the profile's order: cumulative, tottime…")
    opts = parser.parse_args()
    opts.store.parent.mkdir(parents=True, exist_ok=True)
    url = store(opts.store, opts.tasks)

    from webui.app import create_app
    from webui.settings import default_settings

    app = create_app(default_settings(database=url, insecure_no_auth=True), start_collector=False)
    client = app.test_client()
    routes = opts.route or list(ROUTES)
    for route in routes:
        response = client.get(route, environ_base=LOOPBACK)  # and warm its caches
        if response.status_code != 200:
            print(f"{route}: {response.status_code}", file=sys.stderr)
            return 1
        started = time.process_time()
        for _ in range(opts.runs):
            client.get(route, environ_base=LOOPBACK)
        print(f"{route:45} {(time.process_time() - started) / opts.runs * 1000:7.2f} CPU ms/request")
    if opts.profile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(opts.runs):
            client.get(routes[-1], environ_base=LOOPBACK)
        profile.disable()
        pstats.Stats(profile).sort_stats(opts.sort).print_stats(30)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("WEBUI_LOG_LEVEL", "warning")
    sys.exit(main())
