"""The incident state machine on plain data with a made-up clock: open once, remind, silence, resolve, mute."""
from __future__ import annotations

from webui.alerts.engine import AGGREGATE_SUBJECT, OpenIncident, Pending, RuleState, step
from webui.detect.findings import Finding

T = 1_000_000.0


def finding(subject: str = "w1@host") -> Finding:
    return Finding("worker_offline", subject, subject, f"{subject} is offline")


def test_a_finding_opens_one_incident_and_the_next_evaluation_only_updates_it() -> None:
    rule = RuleState(1, "offline")
    first = step(rule, [finding(), finding()], [], [], T)
    assert [f.subject for f in first.open] == ["w1@host"] and first.notify_open

    again = step(rule, [finding()], [OpenIncident(7, "w1@host", last_notified_at=T)], [], T + 15)
    assert again.open == [] and [i for i, _ in again.update] == [7]
    assert again.remind == [] and again.resolve == []


def test_only_after_n_consecutive_evaluations() -> None:
    rule = RuleState(1, "offline", consecutive=3)
    one = step(rule, [finding()], [], [], T)
    assert one.open == [] and one.pending == [Pending("w1@host", 1, T)]
    two = step(rule, [finding()], [], one.pending, T + 15)
    assert two.open == [] and two.pending == [Pending("w1@host", 2, T)]
    three = step(rule, [finding()], [], two.pending, T + 30)
    assert len(three.open) == 1 and three.pending == []


def test_a_miss_in_between_starts_the_count_again() -> None:
    rule = RuleState(1, "offline", consecutive=2)
    one = step(rule, [finding()], [], [], T)
    gap = step(rule, [], [], one.pending, T + 15)
    assert gap.pending == []
    after = step(rule, [finding()], [], gap.pending, T + 30)
    assert after.open == [] and after.pending[0].count == 1


def test_it_resolves_when_the_condition_clears_and_says_so() -> None:
    result = step(RuleState(1, "offline"), [], [OpenIncident(7, "w1@host", last_notified_at=T)], [], T + 60)
    assert result.resolve == [(7, True)]


def test_reminders_every_n_minutes_while_open() -> None:
    rule = RuleState(1, "offline", renotify_minutes=30)
    incident = OpenIncident(7, "w1@host", last_notified_at=T)
    assert step(rule, [finding()], [incident], [], T + 29 * 60).remind == []
    assert step(rule, [finding()], [incident], [], T + 30 * 60).remind == [7]


def test_no_reminders_without_renotify_or_once_acknowledged() -> None:
    incident = OpenIncident(7, "w1@host", last_notified_at=T)
    assert step(RuleState(1, "offline"), [finding()], [incident], [], T + 86400).remind == []
    acked = OpenIncident(7, "w1@host", last_notified_at=T, acked_at=T + 1)
    assert step(RuleState(1, "offline", renotify_minutes=5), [finding()], [acked], [], T + 3600).remind == []


def test_a_silenced_incident_is_quiet_until_the_silence_ends() -> None:
    rule = RuleState(1, "offline", renotify_minutes=5)
    silenced = OpenIncident(7, "w1@host", last_notified_at=T, silenced_until=T + 3600)
    assert step(rule, [finding()], [silenced], [], T + 600).remind == []
    assert step(rule, [], [silenced], [], T + 600).resolve == [(7, False)]  # resolves, quietly
    assert step(rule, [finding()], [silenced], [], T + 3601).remind == [7]
    assert step(rule, [], [silenced], [], T + 3601).resolve == [(7, True)]


def test_maintenance_opens_nothing_sends_nothing_and_resolves_quietly() -> None:
    rule = RuleState(1, "offline", renotify_minutes=5, muted=True)
    assert step(rule, [finding("w2@host")], [], [], T).open == []
    open_one = OpenIncident(7, "w1@host", last_notified_at=T)
    muted = step(rule, [finding()], [open_one], [], T + 3600)
    assert muted.remind == [] and [i for i, _ in muted.update] == [7]
    assert step(rule, [], [open_one], [], T + 3600).resolve == [(7, False)]


def test_over_a_rate_folds_findings_into_one_incident() -> None:
    rule = RuleState(1, "lost", aggregate_min=3)
    two = [finding(f"task-{i}") for i in range(2)]
    assert step(rule, two, [], [], T).open == []
    five = [finding(f"task-{i}") for i in range(5)]
    opened = step(rule, five, [], [], T).open
    assert len(opened) == 1 and opened[0].subject == AGGREGATE_SUBJECT
    assert opened[0].detail["count"] == 5 and "and 2 more" in opened[0].summary
    assert step(rule, two, [OpenIncident(9, AGGREGATE_SUBJECT)], [], T + 15).resolve == [(9, True)]
