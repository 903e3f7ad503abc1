"""The shape every detector returns, and what a detector is given."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from peewee import Database


@dataclass(frozen=True)
class Finding:
    """One thing wrong, as a detector saw it at one evaluation.

    `subject` identifies it for deduplication: the same subject seen again is the same incident (a task's uuid,
    a worker's hostname, a queue's or task type's name, a beat entry's name). `scope` is the name rules' scope
    patterns match: the task type for task findings, else the worker, queue or entry name.
    """

    detector: str
    subject: str
    scope: str
    summary: str  # one line a person on call understands: what, where, since when
    detail: dict[str, Any] = field(default_factory=dict)  # JSON-able facts for the incident page and messages
    link: str | None = None  # a path inside the UI: /task/<uuid>, /worker/<host>, /queue/<name>, /beat/<id>
    value: float | None = None  # the measured number, when there is one (seconds stalled, depth, failure rate)
    since: float | None = None  # when the condition began, when the detector knows


@dataclass(frozen=True)
class DetectContext:
    db: Database
    now: float
    settings: Any
    app_timezone: str | None = None
    celery_app: Any = None  # for detectors that read the app's configuration (config doctor)
