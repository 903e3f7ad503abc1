"""Beat detectors judge as the beat page does: missed entries (×N) and beat itself down."""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webui.detect.findings import DetectContext, Finding
from webui.detect.registry import all_detectors
from webui.settings import default_settings
from webui.store import schema
from webui.store.database import bind_models, open_database
from webui.store.models import BeatEntry, BeatFire, BeatWatch, Task

NOW = 1_800_000_000.0
_ids = itertools.count(1)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    database = open_database(f"sqlite:///{tmp_path / 'beat.sqlite3'}")
    schema.upgrade(database)
    bind_models(database)
    with database.connection_context():
        yield database
    database.close()


def detect(db: Any, name: str, **params: Any) -> list[Finding]:
    detector = all_detectors()[name]
    return detector.run(DetectContext(db, NOW, default_settings(), "UTC"), detector.resolve_params(params))


def every_minute(name: str, *fired_ago: float) -> int:
    """An entry run every 60 s (grace 12 s), watched for a day, that fired `fired_ago` seconds ago."""
    entry = BeatEntry.create(source="app", name=name, task="app.tick",
                             schedule=json.dumps({"kind": "interval", "seconds": 60.0, "relative": False}),
                             first_seen=NOW - 86400, seen_at=NOW, changed_at=NOW - 86400)
    for ago in fired_ago:
        uuid = f"fire-{next(_ids)}"
        Task.create(uuid=uuid, name="app.tick", state="SUCCESS", sent_at=NOW - ago, updated_at=NOW - ago)
        BeatFire.create(entry_id=entry.id, task_uuid=uuid, at=NOW - ago)
    return int(entry.id)


def watched(at: float = NOW) -> None:
    BeatWatch.insert(id=1, task_cursor=0, checked_at=at).execute()


def test_an_entry_missing_its_runs_is_found_with_how_many(db) -> None:
    watched()
    entry_id = every_minute("tick", 600, 660)
    every_minute("fine", 30)

    [finding] = detect(db, "beat_missed")

    assert (finding.subject, finding.scope, finding.link) == ("tick", "tick", f"/beat/{entry_id}")
    assert finding.value == 9.0 and finding.since == NOW - 540  # due 540 s ago; 9 slots passed since
    assert finding.summary.startswith("Beat entry tick (app.tick) missed 9 runs, due ")
    assert "last ran" in finding.summary and "as of" not in finding.summary


def test_misses_below_n_are_not_reported(db) -> None:
    watched()
    every_minute("tick", 600)
    assert detect(db, "beat_missed", misses=10) == []
    assert len(detect(db, "beat_missed", misses=9)) == 1


def test_beat_down_when_nothing_fired_for_longer_than_the_shortest_period(db) -> None:
    watched()
    every_minute("tick", 600)

    [finding] = detect(db, "beat_down")

    assert (finding.subject, finding.scope, finding.link) == ("beat", "beat", "/beat")
    assert finding.value == 600.0 and finding.since == NOW - 600
    assert finding.summary.startswith("Beat looks down: no entry has fired for 10 min")


def test_beat_up_or_unknown_is_not_down(db) -> None:
    assert detect(db, "beat_down") == [] and detect(db, "beat_missed") == []  # nothing watched at all
    watched()
    every_minute("tick", 30)
    assert detect(db, "beat_down") == []


def test_findings_from_an_old_watcher_pass_say_as_of_when(db) -> None:
    watched(NOW - 3600)  # the watcher stopped an hour ago
    every_minute("tick", 4200)

    [finding] = detect(db, "beat_down")

    assert "as of" in finding.summary and "the beat watcher has not run since" in finding.summary
    assert finding.detail["stale"] is True
