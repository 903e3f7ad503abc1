"""One beat schedule entry as a source read it: the common shape every schedule source returns.

A source (the app's `beat_schedule`, a `celerybeat-schedule` file, RedBeat keys, django-celery-beat tables)
only reads; the beat watcher stores what they return and matches fires against it. `schedule` is a plain,
JSON-able spec (webui.beat.schedule_spec), so the store and the pages never need the source's own objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SOURCE_APP = "app"
SOURCE_FILE = "file"
SOURCE_REDBEAT = "redbeat"
SOURCE_DJANGO = "django"
SOURCES = (SOURCE_APP, SOURCE_FILE, SOURCE_REDBEAT, SOURCE_DJANGO)

# How far behind reality each scheduler's own "last run" record may be: RedBeat writes it at every run;
# the schedule file and django-celery-beat rows are synced every 180 s (celery-facts §5.2, §5.3).
RECORD_LAG = {SOURCE_APP: 0.0, SOURCE_FILE: 180.0, SOURCE_REDBEAT: 0.0, SOURCE_DJANGO: 180.0}


@dataclass(frozen=True)
class ScheduleEntry:
    source: str
    name: str
    task: str
    schedule: dict[str, Any]  # a spec: {"kind": "interval" | "crontab" | "solar" | "clocked" | "unknown", …}
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # JSON-able apply_async options (queue, priority…)
    enabled: bool = True
    last_run_at: float | None = None  # UNIX time, the scheduler's own record; None when it keeps none
    total_run_count: int | None = None
    next_due_at: float | None = None  # UNIX time the scheduler itself plans (RedBeat's zset score)
    description: str | None = None  # the user's own words (django-celery-beat's description field)

    @property
    def record_lag(self) -> float:
        return RECORD_LAG.get(self.source, 0.0)
