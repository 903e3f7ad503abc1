"""What people change besides incidents: rules switched on and off or deleted, channels, maintenance windows.

Each function validates and writes; the caller (a page or the API) audits. Problems raise RuleError (webui.alerts
.rules) with every problem, worded for the person filling in the form. Rules and channels from the rules file
(managed_by "file") are not changed here: Git is their source of truth, and the next start would undo it.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from webui import fastjson
from webui.alerts.channels import CHANNELS
from webui.alerts.rules import MAX_NAME, RuleError
from webui.store.models import AlertChannel, AlertMaintenance, AlertPending, AlertRule

MAX_WINDOW_DAYS = 31  # a maintenance window longer than a month is a disabled rule, not maintenance
MAX_TEXT = 2000


# -- rules ------------------------------------------------------------------------------------------------

def rule_name_taken(name: str, rule_id: int | None = None) -> bool:
    """Whether another rule (not `rule_id`) has this name already."""
    clash = AlertRule.get_or_none(AlertRule.name == name)
    return clash is not None and clash.id != rule_id


def set_rule_enabled(rule: AlertRule, enabled: bool, now: float | None = None) -> None:
    AlertRule.update(enabled=enabled, updated_at=time.time() if now is None else now).where(
        AlertRule.id == rule.id).execute()


def delete_rule(rule: AlertRule) -> None:
    """The rule and its pending counts; its incidents stay, as history ("deleted rule N")."""
    AlertPending.delete().where(AlertPending.rule_id == rule.id).execute()
    rule.delete_instance()


def rules_naming_channel(name: str) -> list[AlertRule]:
    return [r for r in AlertRule.select().order_by(AlertRule.name) if name in fastjson.loads_as(r.channels, list)]


# -- channels ---------------------------------------------------------------------------------------------

def channel_problems(name: str, kind: str, config: dict[str, Any], channel_id: int | None = None) -> list[str]:
    """Everything wrong with a channel definition: its name, its kind, and what the kind's module says."""
    problems = []
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        problems.append(f"a channel needs a name of 1 to {MAX_NAME} printable characters")
    else:
        clash = AlertChannel.get_or_none(AlertChannel.name == name)
        if clash is not None and clash.id != channel_id:
            problems.append(f"a channel named {name!r} exists already")
    module = CHANNELS.get(kind)
    if module is None:
        return problems + [f"kind must be one of {', '.join(sorted(CHANNELS))}"]
    return problems + list(module.validate(config))


def save_channel(name: str, kind: str, config: dict[str, Any], enabled: bool, *, channel_id: int | None = None,
                 now: float | None = None) -> AlertChannel:
    """Insert or update a channel made in the UI; a rename carries the rules that named it along."""
    problems = channel_problems(name, kind, config, channel_id)
    if problems:
        raise RuleError("; ".join(problems))
    now = time.time() if now is None else now
    values = dict(name=name, kind=kind, config=json.dumps(config, sort_keys=True), enabled=enabled,
                  managed_by="ui", updated_at=now)
    if channel_id is None:
        return AlertChannel.create(created_at=now, **values)
    old = AlertChannel.get_by_id(channel_id)
    AlertChannel.update(**values).where(AlertChannel.id == channel_id).execute()
    if old.name != name:
        _rename_in_rules(old.name, name, now)
    return AlertChannel.get_by_id(channel_id)


def delete_channel(channel: AlertChannel) -> None:
    """The channel only: rules keep its name, and the notifier notes on each incident that it is gone."""
    channel.delete_instance()


def _rename_in_rules(old: str, new: str, now: float) -> None:
    for rule in rules_naming_channel(old):
        if rule.managed_by == "file":
            continue  # the file names its channels itself; the incident timeline will show the mismatch
        names = [new if n == old else n for n in fastjson.loads_as(rule.channels, list)]
        AlertRule.update(channels=json.dumps(names), updated_at=now).where(AlertRule.id == rule.id).execute()


# -- maintenance windows -----------------------------------------------------------------------------------

def create_window(name: str, patterns: Sequence[str], starts_at: float, ends_at: float, reason: str | None,
                  actor: str | None, now: float | None = None) -> AlertMaintenance:
    """A window muting the rules whose names match `patterns` (none: every rule) from `starts_at` to `ends_at`."""
    now = time.time() if now is None else now
    problems = []
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        problems.append(f"a window needs a name of 1 to {MAX_NAME} printable characters")
    if any(not p or len(p) > MAX_NAME for p in patterns):
        problems.append(f"each rule pattern is 1 to {MAX_NAME} characters")
    if ends_at <= starts_at:
        problems.append("it must end after it starts")
    elif ends_at - starts_at > MAX_WINDOW_DAYS * 86400:
        problems.append(f"a window lasts at most {MAX_WINDOW_DAYS} days (disable the rule instead)")
    if ends_at <= now:
        problems.append("it would be over already: the end is in the past")
    if reason is not None and len(reason) > MAX_TEXT:
        problems.append(f"the reason is at most {MAX_TEXT} characters")
    if problems:
        raise RuleError("; ".join(problems))
    return AlertMaintenance.create(name=name, rules=json.dumps(list(patterns)), starts_at=starts_at,
                                   ends_at=ends_at, reason=reason or None, created_by=actor, created_at=now)


def end_window(window: AlertMaintenance, now: float | None = None) -> bool:
    """End a window that is under way or yet to come, now; False when it is over already."""
    now = time.time() if now is None else now
    if window.ends_at <= now:
        return False
    # A window yet to come ends before it starts: it never mutes anything, and stays listed as history.
    AlertMaintenance.update(ends_at=now, starts_at=min(window.starts_at, now)).where(
        AlertMaintenance.id == window.id).execute()
    return True


def delete_window(window: AlertMaintenance) -> None:
    window.delete_instance()
