"""Beat evidence written straight into a store, as the beat watcher would have: entries, fires, the watch row and
the fired tasks. For the beat pages' tests, which judge what is stored and need no running beat."""
from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from peewee import Database

from tests.support.store import close_database
from webui.beat import schedule_spec
from webui.store.database import open_database
from webui.store.models import BeatEntry, BeatFire, BeatWatch, Task
from webui.store.schema import upgrade

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
MODELS = (BeatEntry, BeatFire, BeatWatch, Task)
_task_ids = itertools.count(1_000_000)


def interval(seconds: float) -> dict[str, Any]:
    return {"kind": "interval", "seconds": float(seconds), "relative": False}


def crontab(minute: str = "*", hour: str = "*", day_of_week: str = "*") -> dict[str, Any]:
    return {"kind": "crontab", "minute": minute, "hour": hour, "day_of_week": day_of_week, "day_of_month": "*",
            "month_of_year": "*", "timezone": None}


class BeatStore:
    """`with BeatStore(database_url) as beat: beat.entry(...); beat.fires(...); beat.watch(...)`."""

    def __init__(self, database_url: str) -> None:
        self.db: Database = open_database(database_url)
        upgrade(self.db)

    def __enter__(self) -> BeatStore:
        self._binding = self.db.bind_ctx(MODELS)
        self._binding.__enter__()
        self.db.connect(reuse_if_open=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._binding.__exit__(*exc)
        close_database(self.db)

    def entry(self, name: str, schedule: dict[str, Any], *, task: str = "tests.celeryapp.echo", source: str = "app",
              args: list[Any] | None = None, kwargs: dict[str, Any] | None = None, first_seen: float | None = None,
              **fields: Any) -> int:
        now = time.time()
        first_seen = now - 7 * 86400 if first_seen is None else first_seen
        row = BeatEntry.create(
            source=source, name=name, task=task, schedule=json.dumps(schedule), args=json.dumps(args or []),
            kwargs=json.dumps(kwargs or {}), options=json.dumps(fields.pop("options", {})),
            first_seen=first_seen, seen_at=fields.pop("seen_at", now), changed_at=fields.pop("changed_at", first_seen),
            **fields)
        return int(row.id)

    def fires(self, entry_id: int, times: Iterable[float], *, states: Iterable[str] = (),
              name: str = "tests.celeryapp.echo", senders: Iterable[str] = ()) -> list[str]:
        """One fire at each time, each with a task row in the given state (SUCCESS when states run out)."""
        states, senders = iter(states), iter(senders)
        uuids = []
        for at in times:
            task_uuid = str(uuid.uuid4())
            state = next(states, "SUCCESS")
            Task.create(id=next(_task_ids), uuid=task_uuid, name=name, state=state, sent_at=at, updated_at=at + 1,
                        succeeded_at=at + 1 if state == "SUCCESS" else None,
                        failed_at=at + 1 if state == "FAILURE" else None)
            BeatFire.create(entry_id=entry_id, task_uuid=task_uuid, at=at, sender=next(senders, "beat@host:4242"))
            uuids.append(task_uuid)
        return uuids

    def watch(self, checked_at: float, sources: dict[str, Any] | None = None, *, pong_nodes: list[str] | None = None,
              ping_at: float | None = None, pong_at: float | None = None) -> None:
        BeatWatch.insert(id=1, task_cursor=0, checked_at=checked_at, sources=json.dumps(sources or {}),
                         ping_at=ping_at, pong_at=pong_at,
                         pong_nodes=json.dumps(pong_nodes) if pong_nodes is not None else None).execute()


def fill_board(database_url: str) -> dict[str, int]:
    """A board with one entry of every kind a user meets: on time (with a failure among its fires), late, missed,
    drifting, firing too often (two beats), waiting with hostile values, disabled, and removed. Returns the ids."""
    now = time.time()
    as_of = now - 1
    with BeatStore(database_url) as beat:
        ids = {}
        ids["on_time"] = beat.entry("sync-invoices", interval(300), kwargs={"batch": 500},
                                    options={"queue": "billing", "priority": 5}, queue="billing")
        beat.fires(ids["on_time"], [now - 120 - 300 * i for i in range(12)],
                   states=["SUCCESS", "SUCCESS", "FAILURE", "SUCCESS", "RETRY"])
        ids["late"] = beat.entry("refresh-rates", interval(600), task="tests.celeryapp.add", args=[1, 2])
        beat.fires(ids["late"], [now - 750 - 600 * i for i in range(6)], name="tests.celeryapp.add")
        nightly = crontab(minute="0", hour="0")
        ids["missed"] = beat.entry("nightly-report", nightly, kwargs={"report": "nightly"})
        last_midnight = schedule_spec.previous_slot(nightly, now - 3 * 86400, "UTC") or now - 3 * 86400
        beat.fires(ids["missed"], [last_midnight + 0.4 - 86400 * i for i in range(4)],
                   states=["FAILURE", "SUCCESS", "SUCCESS", "SUCCESS"])
        every_ten = crontab(minute="*/10")
        ids["drift"] = beat.entry("warm-cache", every_ten)
        slot = schedule_spec.previous_slot(every_ten, now - 100, "UTC") or now - 100
        beat.fires(ids["drift"], [slot + 90 - 600 * i for i in range(6)])
        ids["too_often"] = beat.entry("cleanup-sessions", interval(60))
        beat.fires(ids["too_often"], [now - 10 - 20 * i for i in range(8)],
                   senders=itertools.cycle(["beat-a@web-1:101", "beat-b@web-2:202"]))
        ids["hostile"] = beat.entry(HOSTILE, interval(3600), task=f"tests.{HOSTILE}", args=[HOSTILE],
                                    kwargs={"note": HOSTILE}, description=f"Sends {HOSTILE}", first_seen=now - 60)
        ids["disabled"] = beat.entry("paused-export", crontab(minute="30", hour="7", day_of_week="mon-fri"),
                                     enabled=False, source="django", last_run_at=now - 86400, total_run_count=41)
        ids["removed"] = beat.entry("old-digest", interval(86400), removed_at=now - 3600)
        beat.fires(ids["removed"], [now - 86400 * (i + 1) for i in range(3)])
        beat.watch(as_of, {
            "app": {"where": "the app's beat_schedule", "entries": 6, "error": None, "read_at": as_of},
            "django": {"where": "postgresql://beat:***@db/app", "entries": 1, "error": None, "read_at": as_of},
            "redbeat": {"where": "redis://:***@cache:6379/0 keys redbeat:*", "entries": 0, "read_at": as_of,
                        "error": f"ConnectionError: Error 111 connecting to cache:6379 {HOSTILE}"},
        }, pong_nodes=["celery.beat@web-1"], ping_at=as_of - 5, pong_at=as_of - 5)
    return ids
