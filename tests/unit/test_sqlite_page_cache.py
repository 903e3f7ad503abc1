"""SQLite connections get an 8 MB page cache (pages, background loops); the collector's writer takes 32 MB."""
from __future__ import annotations

from pathlib import Path

from webui.store.database import WRITER_CACHE_KIB, open_database, use_writer_cache


def test_the_writer_takes_the_larger_cache_on_its_own_connection(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    with db.connection_context():
        assert db.execute_sql("PRAGMA cache_size").fetchone()[0] == -8_000
        use_writer_cache(db)
        assert db.execute_sql("PRAGMA cache_size").fetchone()[0] == -WRITER_CACHE_KIB
    with db.connection_context():  # another connection, as another thread would open
        assert db.execute_sql("PRAGMA cache_size").fetchone()[0] == -8_000
