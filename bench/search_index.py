"""Build the tasks' search index over a store the bench filled, and say what it costs: time and bytes per task.

    python bench/task_list.py --database sqlite:///bench/out/tasks-1m.sqlite3 --fill-only
    python bench/search_index.py --database sqlite:///bench/out/tasks-1m.sqlite3
    python bench/task_list.py --database sqlite:///bench/out/tasks-1m.sqlite3 --reuse

bench/task_list.py writes its tasks straight into the table, as the indexer finds tasks after an upgrade: above
its high-water mark, so searches walk the table until this runs. It runs the collector's own indexer
(webui.store.task_search) step after step, as fast as it goes (the collector does the same in small steps beside
the live stream), and prints tasks indexed per second and the index's size: on SQLite the pages of the FTS5
shadow tables (dbstat), on PostgreSQL `task_search` with its indexes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from webui.store import task_search  # noqa: E402
from webui.store.database import is_sqlite, open_database  # noqa: E402
from webui.store.schema import upgrade  # noqa: E402


def index_bytes(db) -> int:
    if is_sqlite(db):
        return int(db.execute_sql("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name LIKE 'task_fts%' "
                                  "OR name LIKE 'task_search%'").fetchone()[0])
    return int(db.execute_sql("SELECT pg_total_relation_size('task_search') + "
                              "pg_total_relation_size('task_search_queue')").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="sqlite:///PATH or postgresql://…")
    options = parser.parse_args()
    db = open_database(options.database)
    upgrade(db)
    with db.connection_context():
        tasks = db.execute_sql("SELECT COUNT(*) FROM task").fetchone()[0]
        began = time.perf_counter()
        last = [began]

        def progress(done: int, mark: int) -> None:
            if time.perf_counter() - last[0] >= 10:
                last[0] = time.perf_counter()
                print(f"  {done:,} tasks, mark {mark:,}, {done / (last[0] - began):,.0f} tasks/s", flush=True)

        done = task_search.catch_up(db, on_step=progress)
        took = time.perf_counter() - began
        if not is_sqlite(db):
            db.execute_sql("VACUUM ANALYZE task_search")
        size = index_bytes(db)
    print(f"indexed {done:,} of {tasks:,} tasks in {took:,.0f} s ({done / max(took, 1e-9):,.0f} tasks/s)")
    print(f"index: {size / 1e6:,.1f} MB, {size / max(tasks, 1):,.0f} bytes/task")


if __name__ == "__main__":
    main()
