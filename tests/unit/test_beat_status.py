"""Judging beat entries on plain data: on time → late → missed, drift, too often, beat down."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from webui.beat import status
from webui.beat.status import EntryFacts, Fire, judge, liveness

EVERY_MINUTE = {"kind": "interval", "seconds": 60.0, "relative": False}
MIDNIGHT = {"kind": "crontab", "minute": "0", "hour": "0", "day_of_week": "*", "day_of_month": "*",
            "month_of_year": "*", "timezone": "UTC"}
T0 = datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp()  # a midnight


def fires(*ats: float, sender: str = "gen1@beat:1", state: str = "SUCCESS") -> tuple[Fire, ...]:
    return tuple(Fire(at, f"t{i}", sender, state) for i, at in enumerate(sorted(ats, reverse=True)))


def test_it_is_on_time_until_due_plus_grace_then_late_then_missed() -> None:
    facts = EntryFacts("e", EVERY_MINUTE, first_seen=T0 - 600, fires=fires(T0))
    grace = status.derived_grace(60.0)
    assert grace == 12.0

    assert judge(facts, T0 + 60 + grace).state == status.ON_TIME
    late = judge(facts, T0 + 60 + grace + 1)
    assert (late.state, late.next_due_at, late.missed_count) == (status.LATE, T0 + 60, 1)
    missed = judge(facts, T0 + 120 + grace + 1)
    assert missed.state == status.MISSED
    assert missed.missed_count == 2
    assert missed.overdue_by == pytest.approx(60 + grace + 1)


def test_a_fire_brings_it_back_on_time_and_its_outcome_is_shown() -> None:
    facts = EntryFacts("e", EVERY_MINUTE, fires=(*fires(T0 + 300, state="FAILURE"), *fires(T0)))
    verdict = judge(facts, T0 + 310)
    assert verdict.state == status.ON_TIME
    assert verdict.last_fired_at == T0 + 300
    assert verdict.last_outcome == "FAILURE"


def test_never_fired_waits_for_its_first_due_time_since_we_started_watching() -> None:
    facts = EntryFacts("e", MIDNIGHT, first_seen=T0 + 3600)
    assert judge(facts, T0 + 7200).state == status.WAITING
    assert judge(facts, T0 + 86400 + 3600).state == status.LATE


def test_the_schedulers_record_counts_and_its_lag_widens_the_grace() -> None:
    facts = EntryFacts("e", EVERY_MINUTE, last_run_at=T0, record_lag=180.0)
    verdict = judge(facts, T0 + 60 + 12 + 100)
    assert verdict.state == status.ON_TIME  # the file may simply not have been synced yet
    assert verdict.last_fired_from == "scheduler"
    assert judge(facts, T0 + 60 + 12 + 181).state == status.LATE


def test_newer_events_win_over_an_older_record() -> None:
    facts = EntryFacts("e", EVERY_MINUTE, last_run_at=T0, record_lag=180.0, fires=fires(T0 + 600))
    verdict = judge(facts, T0 + 630)
    assert (verdict.last_fired_at, verdict.last_fired_from) == (T0 + 600, "events")


def test_an_explicit_grace_is_used() -> None:
    facts = EntryFacts("e", MIDNIGHT, fires=fires(T0), grace=1800.0)
    assert judge(facts, T0 + 86400 + 1700).state == status.ON_TIME
    assert judge(facts, T0 + 86400 + 1900).state == status.LATE


@pytest.mark.parametrize(("facts", "state"), [
    (EntryFacts("e", EVERY_MINUTE, enabled=False), status.DISABLED),
    (EntryFacts("e", EVERY_MINUTE, removed=True), status.REMOVED),
    (EntryFacts("e", {"kind": "unknown", "repr": "<custom>"}), status.UNKNOWN),
    (EntryFacts("e", {"kind": "clocked", "at": T0}, fires=fires(T0)), status.DONE),
])
def test_entries_that_are_not_judged(facts: EntryFacts, state: str) -> None:
    verdict = judge(facts, T0 + 10 * 86400)
    assert verdict.state == state
    assert not verdict.problem


def test_the_midnight_job_that_runs_at_0023_drifts() -> None:
    nights = [T0 - d * 86400 + 23 * 60 for d in range(5)]
    verdict = judge(EntryFacts("e", MIDNIGHT, fires=fires(*nights)), T0 + 3600)
    assert verdict.drift == pytest.approx(23 * 60)


def test_fires_a_few_seconds_after_the_slot_are_not_drift() -> None:
    nights = [T0 - d * 86400 + 2 for d in range(5)]
    assert judge(EntryFacts("e", MIDNIGHT, fires=fires(*nights)), T0 + 3600).drift is None


def test_two_beats_fire_too_often_and_are_named() -> None:
    ats = [T0 + 60 * i for i in range(6)]
    both = tuple(sorted((*fires(*ats, sender="gen1@a:1"), *fires(*(a + 1 for a in ats), sender="gen2@b:2")),
                        key=lambda f: -f.at))
    verdict = judge(EntryFacts("e", EVERY_MINUTE, fires=both), T0 + 330)
    assert verdict.too_often is not None
    assert "2 senders" in verdict.too_often and "gen2@b:2" in verdict.too_often


def test_one_manual_run_is_not_too_often() -> None:
    ats = [T0 + 60 * i for i in range(6)] + [T0 + 61]
    assert judge(EntryFacts("e", EVERY_MINUTE, fires=fires(*ats)), T0 + 330).too_often is None


def verdicts(*last_fired: float | None):
    return [judge(EntryFacts(f"e{i}", EVERY_MINUTE, fires=fires(at) if at else ()), at or T0)
            for i, at in enumerate(last_fired)]


def test_beat_is_down_when_no_entry_fired_for_the_shortest_period_plus_grace() -> None:
    statuses = verdicts(T0, T0 + 30)
    assert liveness(statuses, T0 + 30 + 60 + 12).state == "up"
    down = liveness(statuses, T0 + 30 + 60 + 13)
    assert down.state == "down"
    assert "no entry has fired for 1.2 min" in down.reason


def test_beat_liveness_is_unknown_without_evidence() -> None:
    assert liveness([], T0).state == "unknown"
    assert liveness(verdicts(None), T0).state == "unknown"


def test_a_beat_that_stopped_answering_pings_is_down() -> None:
    statuses = verdicts(T0)
    assert liveness(statuses, T0 + 5, pong_at=T0 + 4, ping_at=T0 + 4).state == "up"
    down = liveness(statuses, T0 + 20, pong_at=T0 + 4, ping_at=T0 + 19)
    assert down.state == "down" and "stopped answering" in down.reason


def test_a_skipped_slot_recorded_ahead_is_not_a_fire_until_it_has_passed() -> None:
    """A skip marks the next slot run before it comes (RedBeat's last_run_at): no "fired in 20 s", and on time
    throughout, since at the skipped slot the record takes over and the next due is the slot after it."""
    skipped = T0 + 60
    facts = EntryFacts("e", EVERY_MINUTE, last_run_at=skipped, fires=fires(T0))
    before = judge(facts, T0 + 40)
    assert (before.state, before.last_fired_at, before.last_fired_from) == (status.ON_TIME, T0, "events")
    after = judge(facts, T0 + 60 + 30)
    assert (after.state, after.last_fired_at, after.next_due_at) == (status.ON_TIME, skipped, T0 + 120)
