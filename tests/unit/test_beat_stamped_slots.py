"""Fires stamped by the companion in beat are matched to their slots by the due time they carry, exactly: lateness
is the fire's time minus its stamped due time, a duplicate is two fires of one due time, and a publish that failed
is beat's attempt at a slot, not a fire of it. Fires without a stamp keep the inference (pure data)."""
from __future__ import annotations

from datetime import datetime, timezone

from webui.beat import status as beat_status
from webui.beat.status import EntryFacts, Fire, judge
from webui.views.beat import fire_history, state_title

EVERY_MINUTE = {"kind": "interval", "seconds": 60.0, "relative": False}
HOURLY = {"kind": "crontab", "minute": "0", "hour": "*", "day_of_week": "*", "day_of_month": "*",
          "month_of_year": "*", "timezone": None}
T0 = datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp()  # a midnight
REFUSED = "OperationalError('Error 111 connecting to 127.0.0.1:6379. Connection refused.')"


def test_two_beats_firing_one_slot_are_both_late_by_their_own_seconds_not_one_early() -> None:
    # Both stamped with the 01:00 slot. Inferred, the second would be "due" an hour after the first: 1 h early.
    fires = [Fire(T0 + 3602.0, "b", "beat-2:7", due=T0 + 3600), Fire(T0 + 3600.5, "a", "beat-1:5", due=T0 + 3600)]
    rows = fire_history(fires, HOURLY, "UTC")
    assert [(r.due, r.lateness) for r in rows] == [(T0 + 3600, 2.0), (T0 + 3600, 0.5)]


def test_an_unstamped_fire_is_still_measured_against_the_slot_inferred_from_the_fire_before() -> None:
    fires = [Fire(T0 + 121.5, "b"), Fire(T0 + 60.0, "a", due=T0 + 60)]
    rows = fire_history(fires, EVERY_MINUTE, "UTC")
    assert (rows[0].due, rows[0].lateness) == (T0 + 120.0, 1.5)


def test_one_slot_fired_twice_is_a_duplicate_at_once_and_names_both_senders() -> None:
    fires = [Fire(T0 + 3602.0, "c", "beat-2:7", due=T0 + 3600), Fire(T0 + 3600.5, "b", "beat-1:5", due=T0 + 3600),
             Fire(T0 + 0.4, "a", "beat-1:5", due=T0)]
    reason = beat_status.too_often(fires, 3600.0)
    assert reason is not None and reason.startswith("1 slot fired more than once (the same due time)")
    assert "2 senders (beat-1:5, beat-2:7)" in reason


def test_stamped_slots_an_hour_apart_are_no_duplicate_however_close_the_fires() -> None:
    # Fires seconds apart, each for its own slot (a beat catching up): the gaps alone would call it too often.
    fires = [Fire(T0 + 7202.0, "c", due=T0 + 7200), Fire(T0 + 7201.0, "b", due=T0 + 3600),
             Fire(T0 + 7200.5, "a", due=T0)]
    assert beat_status.duplicate_slots(fires) == 0


def test_two_computations_of_one_slot_a_few_microseconds_apart_are_the_same_slot() -> None:
    fires = [Fire(T0 + 61.0, "b", due=T0 + 60.000004), Fire(T0 + 60.2, "a", due=T0 + 60.0)]
    assert beat_status.duplicate_slots(fires) == 1


def test_drift_is_measured_against_the_stamped_slot_even_past_the_next_one() -> None:
    # Every hourly fire lands 70 min after its slot: inferred from the latest slot before it, only 10 min late.
    fires = [Fire(T0 + h * 3600 + 4200, f"t{h}", due=T0 + h * 3600) for h in (3, 2, 1)]
    assert beat_status.drift(fires, HOURLY, "UTC") == 4200.0


def minute_entry(*fires: Fire) -> EntryFacts:
    return EntryFacts(name="tick", schedule=EVERY_MINUTE, first_seen=T0 - 3600, fires=fires)


def test_a_failed_publish_is_no_fire_the_slot_is_late_and_says_why() -> None:
    fired = Fire(T0, "a", due=T0)
    failed = Fire(T0 + 60.1, "b", due=T0 + 60.0, failed=REFUSED)
    status = judge(minute_entry(failed, fired), as_of=T0 + 80.0)  # the slot at +60, grace 12 s: late
    assert status.state == beat_status.LATE
    assert status.last_fired_at == T0 and status.next_due_at == T0 + 60.0
    assert status.publish_failed == failed
    assert status.last_outcome is None  # the outcome of the last fire that went, not of the attempt
    assert state_title(status).endswith(
        f"Publish failed: beat tried to send it at 2026-12-01 00:01:00 UTC for the slot due "
        f"2026-12-01 00:01:00 UTC and got {REFUSED}.")


def test_a_failure_before_the_last_fire_is_history_not_the_reason_now() -> None:
    failed = Fire(T0, "a", due=T0, failed=REFUSED)
    fired = Fire(T0 + 60.2, "b", due=T0 + 60.0)
    late = judge(minute_entry(fired, failed), as_of=T0 + 140.0)
    assert late.state == beat_status.LATE and late.publish_failed is None
    assert judge(minute_entry(fired, failed), as_of=T0 + 70.0).state == beat_status.ON_TIME


def test_every_publish_failing_makes_the_entry_missed_with_the_failure_named() -> None:
    attempts = [Fire(T0 + 60.0 * n + 0.1, f"t{n}", due=T0 + 60.0 * n, failed=REFUSED) for n in (3, 2, 1)]
    status = judge(minute_entry(*attempts, Fire(T0, "a", due=T0)), as_of=T0 + 200.0)
    assert status.state == beat_status.MISSED and status.missed_count == 3
    assert status.publish_failed == attempts[0]
