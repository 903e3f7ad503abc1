"""What the beat pages compute for display: how late each fire was against its slot, and the words around it."""
from __future__ import annotations

from datetime import datetime, timezone

from webui.beat.status import EntryStatus, Fire
from webui.views.beat import breakable, fire_history, lateness_text, spec_fields, state_title

EVERY_MINUTE = {"kind": "interval", "seconds": 60.0, "relative": False}
MIDNIGHT = {"kind": "crontab", "minute": "0", "hour": "0", "day_of_week": "*", "day_of_month": "*",
            "month_of_year": "*", "timezone": None}
T0 = datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp()  # a midnight


def newest_first(*ats: float) -> list[Fire]:
    return [Fire(at, f"t{i}") for i, at in enumerate(sorted(ats, reverse=True))]


def test_an_interval_fire_is_due_one_interval_after_the_fire_before_it() -> None:
    rows = fire_history(newest_first(T0, T0 + 61.5, T0 + 100), EVERY_MINUTE, "UTC")
    assert [(r.due, r.lateness) for r in rows] == [(T0 + 121.5, 100 - 121.5), (T0 + 60, 1.5), (None, None)]


def test_a_crontab_fire_is_measured_against_its_slot_even_the_oldest() -> None:
    rows = fire_history(newest_first(T0 + 0.4, T0 + 86400 + 23 * 60), MIDNIGHT, "UTC")
    assert rows[0].due == T0 + 86400 and rows[0].lateness == 23 * 60
    assert rows[1].due == T0 and abs(rows[1].lateness - 0.4) < 1e-6  # its own latest slot: no fire before it


def test_lateness_reads_as_after_or_before_the_slot() -> None:
    assert lateness_text(1.5) == "+1.5 s"
    assert lateness_text(-2400) == "40 min 00 s early"
    assert lateness_text(None) == "—"


def test_a_missed_entry_says_how_many_slots_passed() -> None:
    missed = EntryStatus("missed", grace=720.0, period=3600.0, overdue_by=3 * 3600.0, missed_count=3)
    assert state_title(missed) == "Due 3 h 00 min ago: 3 slots passed (grace 12 min 00 s each) without a fire."


def test_a_task_name_may_wrap_after_its_dots_and_stays_escaped() -> None:
    assert str(breakable("proj.tasks.<b>x")) == "proj.<wbr>tasks.<wbr>&lt;b&gt;x"


def test_spec_fields_come_kind_first_as_json_writes_them() -> None:
    assert spec_fields(EVERY_MINUTE) == [("kind", "interval"), ("relative", "false"), ("seconds", "60.0")]
    assert ("timezone", "null") in spec_fields(MIDNIGHT)
