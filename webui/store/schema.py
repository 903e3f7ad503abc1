"""Create or upgrade the schema: the numbered scripts in `webui/store/migrations`, applied in order once.

Run before any UI worker or collector starts (`webui serve`, `webui collect` and `webui migrate` call it).
Concurrent starts are safe: on PostgreSQL an advisory lock serialises them, on SQLite the migration runs in
an immediate transaction.
"""
from __future__ import annotations

import logging
import os

from peewee import Database
from playhouse.migrations import Runner

from webui.store.database import is_sqlite

log = logging.getLogger(__name__)

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")
MIGRATION_TABLE = "schema_migration"
_PG_MIGRATION_LOCK = 0x77656275_6900  # "webui" + 0: a fixed key for pg_advisory_lock


def runner(db: Database) -> Runner:
    return Runner(db, MIGRATIONS_DIR, table_name=MIGRATION_TABLE)


def upgrade(db: Database, target: str | None = None) -> list[str]:
    """Apply every pending migration (or up to `target`); return the names applied."""
    with db.connection_context():
        if is_sqlite(db):
            return _apply(db, target)
        db.execute_sql("SELECT pg_advisory_lock(%s)", (_PG_MIGRATION_LOCK,))
        try:
            return _apply(db, target)
        finally:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (_PG_MIGRATION_LOCK,))


def _apply(db: Database, target: str | None) -> list[str]:
    applied = runner(db).up(target)
    for name in applied:
        log.info("database schema: applied %s", name)
    return applied


def current_version(db: Database) -> int:
    """The number of applied migrations (0 for an empty database)."""
    with db.connection_context():
        return len(runner(db).applied())


def latest_version() -> int:
    return len([m for m in runner_migrations()])


def runner_migrations() -> list[str]:
    return sorted(n[:-3] for n in os.listdir(MIGRATIONS_DIR) if n[:1].isdigit() and n.endswith(".py"))
