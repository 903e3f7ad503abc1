"""Alert rules: the built-in defaults, the GitOps file, and the one validation both they and the editor use.

Rules live in the `alert_rule` table. `managed_by` says who owns a rule: "default" (created once, then the
user's to edit or disable), "file" (from `alert_rules_file`, rewritten at each start and read-only in the UI),
or "ui". Channels can come from the same file (`[[channel]]` tables).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from webui import progress_promise
from webui.detect.registry import all_detectors
from webui.store.models import AlertChannel, AlertRule

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

SEVERITIES = ("info", "warning", "critical")
RULE_OPTIONS = ("aggregate_min",)  # rule-level options kept in params, beside the detector's own
MAX_NAME = 255


class RuleError(ValueError):
    """A rule or channel definition is wrong; the message says which one and why."""


@dataclass
class RuleSpec:
    name: str
    detector: str
    scope: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    severity: str = "warning"
    channels: list[str] = field(default_factory=list)
    enabled: bool = True
    consecutive: int = 1
    renotify_minutes: float | None = None


DEFAULT_RULES = (
    RuleSpec("Lost tasks", "task_lost", severity="critical"),
    RuleSpec("Stalled tasks", "task_stalled"),
    RuleSpec("Duplicate executions", "task_duplicate"),
    RuleSpec("Worker offline", "worker_offline", severity="critical", consecutive=2),
    RuleSpec("Wedged worker", "wedged_worker", consecutive=2),
    RuleSpec("Queue without consumers", "queue_unattended", severity="critical", consecutive=2),
    RuleSpec("Queue growing", "queue_rising", consecutive=2),
    RuleSpec("Beat entry missed", "beat_missed", severity="critical"),
    RuleSpec("Beat down", "beat_down", severity="critical"),
    RuleSpec("Failure spike", "failure_rate"),
    RuleSpec("New exception", "new_exception", severity="info"),
    RuleSpec("Runtime regression", "runtime_regression", severity="info", consecutive=2),
    RuleSpec("Configuration problems", "config_doctor", severity="info"),
)


def validate(spec: RuleSpec) -> list[str]:
    """Every problem with `spec`, worded for the person who wrote it (empty: fine)."""
    problems = []
    detectors = all_detectors()
    if not isinstance(spec.name, str) or not spec.name or len(spec.name) > MAX_NAME:
        problems.append(f"a rule needs a name of 1 to {MAX_NAME} characters")
    detector = detectors.get(spec.detector) if isinstance(spec.detector, str) else None
    if detector is None:
        problems.append(f"unknown detector {spec.detector!r} (one of {', '.join(sorted(detectors))})")
    if not isinstance(spec.severity, str) or spec.severity not in SEVERITIES:
        problems.append(f"severity must be one of {', '.join(SEVERITIES)}, not {spec.severity!r}")
    if not isinstance(spec.consecutive, int) or not 1 <= spec.consecutive <= 100:
        problems.append("consecutive must be a whole number from 1 to 100")
    if spec.renotify_minutes is not None and not (isinstance(spec.renotify_minutes, int | float)
                                                  and 1 <= spec.renotify_minutes <= 7 * 1440):
        problems.append("renotify_minutes must be between 1 and 10080 (a week), or empty for once")
    if not isinstance(spec.scope, list) or not all(isinstance(p, str) and p for p in spec.scope):
        problems.append("scope is a list of name patterns such as tasks.* or celery")
    if not isinstance(spec.channels, list) or not all(isinstance(c, str) and c for c in spec.channels):
        problems.append("channels is a list of channel names")
    if not isinstance(spec.enabled, bool):
        problems.append("enabled must be true or false")
    if not isinstance(spec.params, dict):
        return problems + ["params is an object of the detector's parameters"]
    for name, value in spec.params.items():
        if name in RULE_OPTIONS:
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a whole number of at least 1")
            continue
        if detector is None:
            continue
        param = detector.params.get(name)
        if param is None:
            problems.append(f"{spec.detector} has no parameter {name!r} (it has: "
                            f"{', '.join(detector.params) or 'none'})")
            continue
        problem = _param_problem(name, value, param)
        if problem:
            problems.append(problem)
    return problems


def _param_problem(name: str, value: Any, param: Any) -> str | None:
    kind = type(param.default)
    if kind is bool:
        return None if isinstance(value, bool) else f"{name} must be true or false"
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} must be a number"
        if kind is int and not float(value).is_integer():
            return f"{name} must be a whole number"
        if param.min is not None and value < param.min or param.max is not None and value > param.max:
            return f"{name} must be between {param.min} and {param.max}"
        return None
    return None if isinstance(value, str) else f"{name} must be text"


def matches_scope(scope: list[str], name: str) -> bool:
    return not scope or any(fnmatchcase(name, pattern) for pattern in scope)


STALLED_DETECTOR = "task_stalled"


def promise_grace(task_name: str | None) -> float:
    """The grace a task's progress promise is judged with (webui.progress_promise): the smallest
    `promise_grace_seconds` of the enabled stalled-task rules whose scope covers `task_name`, so the task page
    calls a promise broken when the first of those rules does; the default when none covers it."""
    detector = all_detectors().get(STALLED_DETECTOR)
    if detector is None:
        return float(progress_promise.GRACE_SECONDS)
    graces = [float(detector.resolve_params(_json_dict(row.params))["promise_grace_seconds"])
              for row in AlertRule.select(AlertRule.scope, AlertRule.params)
              .where((AlertRule.detector == STALLED_DETECTOR) & (AlertRule.enabled == True))  # noqa: E712
              if matches_scope(_json_list(row.scope), task_name or "")]
    return min(graces, default=float(progress_promise.GRACE_SECONDS))


def spec_of(row: AlertRule) -> RuleSpec:
    return RuleSpec(row.name, row.detector, _json_list(row.scope), _json_dict(row.params), row.severity,
                    _json_list(row.channels), bool(row.enabled), int(row.consecutive), row.renotify_minutes)


def save(spec: RuleSpec, managed_by: str, *, rule_id: int | None = None, now: float | None = None) -> AlertRule:
    """Insert or update a rule after validating it (RuleError lists the problems)."""
    problems = validate(spec)
    if problems:
        raise RuleError(f"rule {spec.name!r}: " + "; ".join(problems))
    now = time.time() if now is None else now
    values = dict(name=spec.name, detector=spec.detector, scope=json.dumps(spec.scope),
                  params=json.dumps(spec.params, sort_keys=True), severity=spec.severity,
                  channels=json.dumps(spec.channels), enabled=spec.enabled, consecutive=spec.consecutive,
                  renotify_minutes=spec.renotify_minutes, managed_by=managed_by, updated_at=now)
    if rule_id is None:
        return AlertRule.create(created_at=now, **values)
    AlertRule.update(**values).where(AlertRule.id == rule_id).execute()
    return AlertRule.get_by_id(rule_id)


def ensure_defaults(now: float | None = None) -> list[str]:
    """Create each built-in rule whose name does not exist yet; returns the names created."""
    existing = {r.name for r in AlertRule.select(AlertRule.name)}
    detectors = all_detectors()
    created = []
    for spec in DEFAULT_RULES:
        if spec.name not in existing and spec.detector in detectors:
            save(spec, "default", now=now)
            created.append(spec.name)
    return created


# -- the GitOps file ----------------------------------------------------------------------------------------

def read_rules_file(path: str) -> tuple[list[RuleSpec], list[dict[str, Any]]]:
    """Parse and check `alert_rules_file`: ([rules], [channels]); RuleError with every problem found."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise RuleError(f"cannot read the alert rules file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"the alert rules file {path} is not valid TOML: {exc}") from exc
    unknown = set(data) - {"rule", "channel"}
    if unknown:
        raise RuleError(f"{path}: unknown top-level keys {sorted(unknown)}; use [[rule]] and [[channel]] tables")
    rules, problems = [], []
    for index, table in enumerate(data.get("rule", []), 1):
        try:
            spec = _rule_from_table(table)
        except (TypeError, ValueError) as exc:
            problems.append(f"rule #{index}: {exc}")
            continue
        problems += [f"rule {spec.name!r}: {p}" for p in validate(spec)]
        rules.append(spec)
    channels = [_channel_from_table(t, i, problems) for i, t in enumerate(data.get("channel", []), 1)]
    names = [r.name for r in rules]
    problems += [f"rule {n!r} is defined twice" for n in sorted({n for n in names if names.count(n) > 1})]
    known = {c["name"] for c in channels if c} | {c.name for c in AlertChannel.select(AlertChannel.name)}
    for rule in rules:
        problems += [f"rule {rule.name!r}: unknown channel {c!r}" for c in rule.channels if c not in known]
    if problems:
        raise RuleError(f"{path}: " + "; ".join(problems))
    return rules, [c for c in channels if c]


def apply_rules_file(path: str, now: float | None = None) -> tuple[int, int]:
    """Write the file's channels and rules (managed_by "file"); file rules no longer in it are disabled."""
    rules, channels = read_rules_file(path)
    now = time.time() if now is None else now
    for channel in channels:
        _save_file_channel(channel, now)
    by_name = {r.name: r for r in AlertRule.select()}
    for spec in rules:
        existing = by_name.get(spec.name)
        save(spec, "file", rule_id=existing.id if existing else None, now=now)
    listed = {r.name for r in rules}
    (AlertRule.update(enabled=False, updated_at=now)
     .where(AlertRule.managed_by == "file", AlertRule.name.not_in(listed or [""])).execute())
    return len(rules), len(channels)


def _rule_from_table(table: dict[str, Any]) -> RuleSpec:
    allowed = {"name", "detector", "scope", "params", "severity", "channels", "enabled", "consecutive",
               "renotify_minutes"}
    extra = set(table) - allowed
    if extra:
        raise ValueError(f"unknown keys {sorted(extra)} (allowed: {', '.join(sorted(allowed))})")
    scope = table.get("scope", [])
    return RuleSpec(str(table.get("name", "")), str(table.get("detector", "")),
                    [scope] if isinstance(scope, str) else list(scope), dict(table.get("params", {})),
                    str(table.get("severity", "warning")), list(table.get("channels", [])),
                    bool(table.get("enabled", True)), table.get("consecutive", 1), table.get("renotify_minutes"))


def _channel_from_table(table: dict[str, Any], index: int, problems: list[str]) -> dict[str, Any] | None:
    from webui.alerts.channels import CHANNELS

    name, kind = table.get("name"), table.get("kind")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        problems.append(f"channel #{index}: a channel needs a name")
        return None
    module = CHANNELS.get(kind) if isinstance(kind, str) else None
    if module is None:
        problems.append(f"channel {name!r}: kind must be one of {', '.join(sorted(CHANNELS))}")
        return None
    config = {k: v for k, v in table.items() if k not in ("name", "kind", "enabled")}
    problems += [f"channel {name!r}: {p}" for p in module.validate(config)]
    return {"name": name, "kind": kind, "config": config, "enabled": bool(table.get("enabled", True))}


def _save_file_channel(channel: dict[str, Any], now: float) -> None:
    values = dict(kind=channel["kind"], config=json.dumps(channel["config"], sort_keys=True),
                  enabled=channel["enabled"], managed_by="file", updated_at=now)
    updated = AlertChannel.update(**values).where(AlertChannel.name == channel["name"]).execute()
    if not updated:
        AlertChannel.create(name=channel["name"], created_at=now, **values)


def _json_list(text: str | None) -> list[Any]:
    from webui import fastjson

    return fastjson.loads_as(text, list)


def _json_dict(text: str | None) -> dict[str, Any]:
    from webui import fastjson

    return fastjson.loads_as(text, dict)
