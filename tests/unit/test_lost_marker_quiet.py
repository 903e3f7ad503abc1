"""A lost-task rule that keeps failing (the companion's Redis away, every 2 s) is logged once, not every pass."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis

from webui.detect import lost_marker
from webui.store.database import open_database


def test_a_failing_rule_warns_once_then_says_when_it_works_again(tmp_path: Path, caplog) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'q.sqlite3'}")

    def down() -> list:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    caplog.set_level(logging.INFO, logger=lost_marker.__name__)
    try:
        for _ in range(5):
            assert lost_marker._judge(db, "presence", down) == []
        assert lost_marker._judge(db, "presence", lambda: [{"uuid": "u"}]) == [{"uuid": "u"}]
        assert lost_marker._judge(db, "presence", down) == []
    finally:
        lost_marker._failing.clear()
        db.close_all()
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == ["WARNING", "INFO", "WARNING"], said
    assert "ConnectionError" in said[0][1] and "works again" in said[1][1]


@pytest.fixture(autouse=True)
def _fresh() -> None:
    lost_marker._failing.clear()
