"""The incident state machine: one rule's findings at one evaluation → what to open, update, remind, resolve.

Pure logic on plain data, with `now` passed in, so cooldowns, reminders, silences and maintenance are tested
with a made-up clock. The runner (webui.alerts.runner) loads the rows, calls `step`, and writes the result.

- A finding's subject seen `consecutive` evaluations in a row opens one incident (dedupe by rule and subject);
  fewer are kept as pending counts, and a miss in between starts the count again.
- While open, the incident follows the finding (summary, detail, last seen). A reminder goes out every
  `renotify_minutes` unless the incident is acknowledged or silenced.
- When the subject is no longer found, the incident resolves, and "resolved" is sent unless it is silenced.
- A rule under maintenance opens nothing and sends nothing; its open incidents still resolve, quietly.
- `aggregate_min` (a rule option) folds all findings into one incident, subject "*", opened only when at least
  that many subjects are found at once: "over a rate" conditions (more than 5 lost tasks in the window).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from webui.detect.findings import Finding

AGGREGATE_SUBJECT = "*"


@dataclass(frozen=True)
class RuleState:
    id: int
    name: str
    consecutive: int = 1
    renotify_minutes: float | None = None
    aggregate_min: int | None = None
    muted: bool = False  # a maintenance window covers it now


@dataclass(frozen=True)
class OpenIncident:
    id: int
    subject: str
    last_notified_at: float | None = None
    acked_at: float | None = None
    silenced_until: float | None = None

    def quiet(self, now: float) -> bool:
        return self.silenced_until is not None and self.silenced_until > now


@dataclass(frozen=True)
class Pending:
    subject: str
    count: int
    first_seen_at: float


@dataclass
class Step:
    open: list[Finding] = field(default_factory=list)  # new incidents; notify "opened" when `notify_open`
    notify_open: bool = True
    update: list[tuple[int, Finding]] = field(default_factory=list)
    remind: list[int] = field(default_factory=list)
    resolve: list[tuple[int, bool]] = field(default_factory=list)  # (incident id, notify "resolved")
    pending: list[Pending] = field(default_factory=list)  # the pending counts to keep (others are dropped)


def step(rule: RuleState, findings: Iterable[Finding], incidents: Iterable[OpenIncident],
         pending: Iterable[Pending], now: float) -> Step:
    found = _by_subject(findings, rule)
    open_by_subject = {i.subject: i for i in incidents}
    pending_by_subject = {p.subject: p for p in pending}
    result = Step(notify_open=not rule.muted)
    for subject, finding in found.items():
        incident = open_by_subject.get(subject)
        if incident is not None:
            result.update.append((incident.id, finding))
            if _reminder_due(rule, incident, now):
                result.remind.append(incident.id)
            continue
        if rule.muted:
            continue  # maintenance: nothing opens, and nothing counts towards opening
        before = pending_by_subject.get(subject)
        count = (before.count if before else 0) + 1
        if count >= max(1, rule.consecutive):
            result.open.append(finding)
        else:
            result.pending.append(Pending(subject, count, before.first_seen_at if before else now))
    for subject, incident in open_by_subject.items():
        if subject not in found:
            result.resolve.append((incident.id, not rule.muted and not incident.quiet(now)))
    return result


def _reminder_due(rule: RuleState, incident: OpenIncident, now: float) -> bool:
    if rule.muted or not rule.renotify_minutes or incident.acked_at is not None or incident.quiet(now):
        return False
    last = incident.last_notified_at
    return last is None or now - last >= rule.renotify_minutes * 60.0


def _by_subject(findings: Iterable[Finding], rule: RuleState) -> dict[str, Finding]:
    by_subject: dict[str, Finding] = {}
    for finding in findings:
        by_subject.setdefault(finding.subject, finding)
    if rule.aggregate_min is None:
        return by_subject
    if len(by_subject) < rule.aggregate_min:
        return {}
    return {AGGREGATE_SUBJECT: aggregate(list(by_subject.values()))}


def aggregate(findings: list[Finding]) -> Finding:
    """Many findings as one: the count, the first few summaries, and the subjects (capped) in the detail."""
    first = findings[0]
    listed = "; ".join(f.summary for f in findings[:3])
    more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
    detail: dict[str, Any] = {"count": len(findings), "subjects": [f.subject for f in findings[:50]],
                              "summaries": [f.summary for f in findings[:10]]}
    since = [f.since for f in findings if f.since is not None]
    return Finding(first.detector, AGGREGATE_SUBJECT, "*", f"{len(findings)} found: {listed}{more}",
                   detail, None, float(len(findings)), min(since) if since else None)
