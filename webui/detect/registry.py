"""Every detector by name, with its title and its parameters (name → default, help) for the rule editor."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from webui.detect.findings import DetectContext, Finding

DetectFunction = Callable[[DetectContext, dict[str, Any]], list[Finding]]


@dataclass(frozen=True)
class Param:
    default: float | int | str | bool
    help: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Detector:
    name: str
    title: str  # "Stalled task"
    scope_kind: str  # what a rule's scope patterns match: "task", "worker", "queue", "beat entry", "cluster"
    run: DetectFunction
    params: dict[str, Param] = field(default_factory=dict)
    description: str = ""

    def resolve_params(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """The defaults, overridden by the rule's own values (unknown names are ignored, checked on save)."""
        values = {name: p.default for name, p in self.params.items()}
        for name, value in (given or {}).items():
            if name in self.params:
                values[name] = value
        return values


DETECTORS: dict[str, Detector] = {}


def register(detector: Detector) -> Detector:
    if detector.name in DETECTORS:
        raise ValueError(f"detector {detector.name!r} registered twice")
    DETECTORS[detector.name] = detector
    return detector


def all_detectors() -> dict[str, Detector]:
    """Every detector, importing the modules that register them (once)."""
    from webui.detect import load_all  # noqa: F401 - registers on import

    return DETECTORS
