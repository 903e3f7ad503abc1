"""Read what the collector stored, with plain SQL, from a test's own connection."""
from __future__ import annotations

import json
from typing import Any

from peewee import Database

from webui.collector.rollups import COUNT_COLUMNS
from webui.store.database import open_database


class StoreReader:
    def __init__(self, database_url: str) -> None:
        self.db: Database = open_database(database_url)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        sql = sql.replace("?", self.db.param)
        with self.db.connection_context():
            cursor = self.db.execute_sql(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        with self.db.connection_context():
            self.db.execute_sql(sql.replace("?", self.db.param), params)

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = self.rows(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def task(self, uuid: str) -> dict[str, Any] | None:
        rows = self.rows("SELECT * FROM task WHERE uuid = ?", (uuid,))
        if not rows:
            return None
        row = rows[0]
        row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
        return row

    def state(self, uuid: str) -> str | None:
        return self.scalar("SELECT state FROM task WHERE uuid = ?", (uuid,))

    def events(self, uuid: str) -> list[dict[str, Any]]:
        rows = self.rows("SELECT e.* FROM task_event e JOIN task t ON t.id = e.task_id WHERE t.uuid = ? "
                         "ORDER BY e.seq", (uuid,))
        for row in rows:
            row["data"] = json.loads(row["data"]) if row["data"] else {}
        return rows

    def gaps(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM collector_gap ORDER BY id")

    def status(self) -> dict[str, Any] | None:
        rows = self.rows("SELECT * FROM collector_status WHERE id = 1")
        return rows[0] if rows else None

    def count(self, table: str) -> int:
        return int(self.scalar(f"SELECT COUNT(*) FROM {table}"))

    def rollup_totals(self) -> dict[str, int]:
        """The per-minute rollups summed over every minute and name: {"received": n, …, "runtime_count": n}."""
        columns = (*COUNT_COLUMNS, "runtime_count")
        row = self.rows(f"SELECT {', '.join(f'COALESCE(SUM({c}), 0) AS {c}' for c in columns)} FROM task_minute")
        return {c: int(row[0][c]) for c in columns}

    def stream_event_totals(self) -> dict[str, int]:
        """What the rollups must add up to: the stored stream events (not repairs) of each counted type."""
        counts = {r["type"]: int(r["n"]) for r in self.rows(
            "SELECT type, COUNT(*) AS n FROM task_event WHERE source IS NULL GROUP BY type")}
        totals = {c: counts.get(f"task-{c}", 0) for c in COUNT_COLUMNS}
        return {**totals, "runtime_count": totals["succeeded"]}

    def close(self) -> None:
        close_database(self.db)


def close_database(db: Database) -> None:
    """Close every connection, pooled ones included (psycopg warns about connections left to the GC)."""
    close_all = getattr(db, "close_all", None)
    if close_all is not None:
        close_all()
    elif not db.is_closed():
        db.close()
