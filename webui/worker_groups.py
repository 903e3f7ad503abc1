"""Stable group names for workers whose hostnames change with every pod: `worker_group_pattern`.

Kubernetes names a Deployment's pods `<deployment>-<pod-template-hash>-<5 chars>`, a DaemonSet's
`<daemonset>-<5 chars>` and a StatefulSet's `<statefulset>-<ordinal>`; every rollout brings new names, so a
list of hostnames fills with dead pods. The pattern's one group is the stable name; a hostname that does not
match is its own group. Both random parts use Kubernetes' "safe" alphabet (no vowels, no 0, 1 or 3), so
ordinary words rarely look like them, and the name must end in a part with a letter, so `ip-10-0-0-1` stays.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
DEFAULT_PATTERN = (r"^((?:[^@]*@)?[a-z0-9.-]*?[a-z][a-z0-9]*)"
                   rf"(?:(?:-{_SAFE}{{6,10}})?-{_SAFE}{{5}}|-\d{{1,5}})$")

T = TypeVar("T")


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a group pattern (not a regular expression, or not exactly one group)."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"{pattern!r} is not a valid regular expression: {exc}"
    if compiled.groups != 1:
        return f"{pattern!r} must have exactly one group (the stable name), it has {compiled.groups}"
    return None


def group_name(hostname: str, pattern: re.Pattern[str] | None) -> str:
    """The stable name for `hostname`: the pattern's group when it matches, else the hostname itself."""
    if pattern is None:
        return hostname
    match = pattern.search(hostname)
    return match.group(1) if match and match.group(1) else hostname


@dataclass
class Group(Generic[T]):
    """Workers sharing one stable name; `online` and `offline` keep the order they were given in."""

    name: str
    online: list[T] = field(default_factory=list)
    offline: list[T] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.online) + len(self.offline)

    @property
    def single(self) -> bool:
        """One worker whose name is the group's: nothing to group, show it as a plain row."""
        return self.size == 1


def group(online: Iterable[T], offline: Iterable[T], hostname: Callable[[T], str],
          pattern: re.Pattern[str] | None) -> list[Group[T]]:
    """Workers by stable name: groups with a worker online first, then by name."""
    groups: dict[str, Group[T]] = {}
    for items, online_flag in ((online, True), (offline, False)):
        for item in items:
            name = group_name(hostname(item), pattern)
            entry = groups.setdefault(name, Group(name))
            (entry.online if online_flag else entry.offline).append(item)
    return sorted(groups.values(), key=lambda g: (not g.online, g.name))
