"""Counting the companion records a stream trimmed before the collector's group read them, from XINFO replies
shaped as redis-py returns them (webui.collector.stream_trim)."""
from __future__ import annotations

import logging
from typing import Any

import pytest

from webui.collector.agent_stream import AgentStreamOptions, AgentStreamReader
from webui.collector.stream_trim import (
    GroupState,
    StreamState,
    Trimmed,
    corrected_entries_read,
    count_trimmed,
    id_time,
    supports_counting,
)

T0 = 1_796_000_000_000  # ms: stream ids are times


def stream_info(added: int | None, length: int, first: int | None, last: int) -> dict[str, Any]:
    """XINFO STREAM as redis-py parses it (Redis 7; `added` None: Redis 6, which has no entries-added)."""
    info: dict[str, Any] = {"length": length, "last-generated-id": f"{T0 + last}-0".encode(),
                            "max-deleted-entry-id": b"0-0", "groups": 1,
                            "first-entry": None if first is None else (f"{T0 + first}-0".encode(), {b"r": b"{}"}),
                            "last-entry": (f"{T0 + last}-0".encode(), {b"r": b"{}"})}
    if added is not None:
        info["entries-added"] = added
        info["recorded-first-entry-id"] = info["first-entry"][0] if first is not None else b"0-0"
    return info


def groups_info(last: int | None, read: int | None, lag: int | None) -> list[dict[str, Any]]:
    """XINFO GROUPS: ours ("webui") among another monitor's. `last` None: never read (0-0)."""
    delivered = b"0-0" if last is None else f"{T0 + last}-0".encode()
    return [{"name": b"other", "consumers": 0, "pending": 0, "last-delivered-id": b"0-0", "entries-read": None,
             "lag": 0},
            {"name": b"webui", "consumers": 1, "pending": 0, "last-delivered-id": delivered, "entries-read": read,
             "lag": lag}]


def count(stream: dict[str, Any], groups: list[dict[str, Any]]) -> Trimmed | None:
    group = GroupState.from_xinfo(groups, "webui")
    assert group is not None
    return count_trimmed(StreamState.from_xinfo(stream), group)


def test_it_counts_nothing_when_the_group_read_everything() -> None:
    # 1,100 added, the stream keeps the newest 150; the group read the last one.
    assert count(stream_info(1100, 150, first=950, last=1099), groups_info(1099, 1100, 0)) is None


def test_it_counts_nothing_when_the_trim_stopped_short_of_the_group() -> None:
    # The group read 1,000 of 1,100; the stream holds the newest 150, the 100 unread among them.
    assert count(stream_info(1100, 150, first=950, last=1099), groups_info(999, 1000, 100)) is None


def test_it_counts_what_was_trimmed_past_the_group_while_the_monitor_was_away() -> None:
    # The group read 100 entries, then 1,000 more came; the stream keeps 150: 850 were trimmed unread.
    trimmed = count(stream_info(1100, 150, first=950, last=1099), groups_info(99, 100, 1000))
    assert trimmed == Trimmed(850, id_time(f"{T0 + 99}-0"), id_time(f"{T0 + 950}-0"))
    assert trimmed.after is not None and trimmed.before is not None
    assert trimmed.before - trimmed.after == pytest.approx(0.851)


def test_it_counts_every_unread_entry_when_the_stream_was_trimmed_empty() -> None:
    trimmed = count(stream_info(1100, 0, first=None, last=1099), groups_info(99, 100, 1000))
    assert trimmed is not None and trimmed.count == 1000
    assert trimmed.before == id_time(f"{T0 + 1099}-0")


def test_a_loss_left_in_the_counters_shows_once_the_group_is_caught_up() -> None:
    # Trimmed past the group just before a read: Redis counted the read on from the old position, so the group
    # is at the stream's last id with a lag of 390 that is the loss, not a backlog.
    trimmed = count(stream_info(1100, 150, first=950, last=1099), groups_info(1099, 710, 390))
    assert trimmed is not None and trimmed.count == 390
    assert (trimmed.after, trimmed.before) == (None, id_time(f"{T0 + 1099}-0"))


def test_part_way_through_the_stream_it_waits_for_a_later_check() -> None:
    # The group is among the entries the stream holds: how many remain after it is not known cheaply.
    assert count(stream_info(1100, 150, first=950, last=1099), groups_info(1000, 700, 400)) is None


def test_what_was_trimmed_before_the_group_existed_is_not_counted() -> None:
    # A new group at 0-0: Redis has no entries-read yet and estimates the lag as the stream's length.
    assert count(stream_info(1100, 150, first=950, last=1099), groups_info(None, None, 150)) is None


def test_with_the_lag_known_and_entries_read_not_it_counts_from_the_lag() -> None:
    trimmed = count(stream_info(1100, 150, first=950, last=1099), groups_info(99, None, 1000))
    assert trimmed is not None and trimmed.count == 850


def test_with_neither_counter_it_cannot_count() -> None:
    # Entries deleted ahead of the group (XDEL): Redis answers null for both.
    assert count(stream_info(1100, 150, first=950, last=1099), groups_info(99, None, None)) is None


def test_before_redis_7_nothing_can_be_counted() -> None:
    stream = StreamState.from_xinfo(stream_info(None, 150, first=950, last=1099))
    assert not supports_counting(stream)
    group = GroupState.from_xinfo([{"name": "webui", "consumers": 1, "pending": 0,
                                    "last-delivered-id": f"{T0 + 99}-0"}], "webui")
    assert group == GroupState(f"{T0 + 99}-0", None, None)
    assert count_trimmed(stream, group) is None


def test_another_name_is_not_our_group() -> None:
    assert GroupState.from_xinfo(groups_info(99, 100, 0), "missing") is None


def test_the_correction_accounts_the_loss_in_entries_read() -> None:
    stream = StreamState.from_xinfo(stream_info(1100, 150, first=950, last=1099))
    assert corrected_entries_read(stream, GroupState(f"{T0 + 1099}-0", 710, 390), 390) == 1100
    assert corrected_entries_read(stream, GroupState(f"{T0 + 99}-0", None, 1000), 850) == 950  # from the lag
    assert corrected_entries_read(stream, GroupState(f"{T0 + 99}-0", None, None), 850) is None
    after = count_trimmed(stream, GroupState(f"{T0 + 1099}-0", 1100, 0))
    assert after is None  # once corrected, the same counters report nothing again


def test_the_report_says_how_many_when_and_what_to_raise() -> None:
    trimmed = Trimmed(850, 1_796_000_000.0, 1_796_000_060.0)
    text = trimmed.describe("webui:agent")
    assert text.startswith("850 companion records were trimmed from the stream webui:agent")
    assert "added between " in text and "WEBUI_AGENT_MAX_LENGTH" in text and "agent_max_length" in text
    assert trimmed.span(now=1_796_000_100.0) == (1_796_000_000.0, 1_796_000_060.0)
    assert Trimmed(5, None, None).span(now=10.0) == (10.0, 10.0)
    assert Trimmed(5, None, 4.0).describe("s").count("added before") == 1
    assert Trimmed(5, 3.0, 50.0).span(now=10.0) == (3.0, 10.0)  # a sender's clock ahead: never past now


def test_before_redis_7_the_reader_says_so_once_and_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    reports: list[Trimmed] = []
    reader = AgentStreamReader(AgentStreamOptions("redis://unused", "webui:agent", "webui"), lambda exc: None,
                               lambda: True, on_trimmed=reports.append)
    handed: list[Any] = []
    with caplog.at_level(logging.WARNING, logger="webui.collector.agent_stream"):
        for _ in range(3):
            reader.trim.counted(stream_info(None, 150, first=950, last=1099),
                                [{"name": b"webui", "last-delivered-id": f"{T0 + 99}-0".encode()}],
                                lambda *args, **kwargs: handed.append(args))
    said = [r.getMessage() for r in caplog.records if "cannot be counted" in r.getMessage()]
    assert len(said) == 1 and "before 7.0" in said[0]
    assert reports == [] and handed == []


def test_the_reader_reports_only_what_is_new_until_the_group_is_corrected() -> None:
    reports: list[Trimmed] = []
    receipts: list[Any] = []
    reader = AgentStreamReader(AgentStreamOptions("redis://unused", "webui:agent", "webui"), lambda exc: None,
                               lambda: True, on_trimmed=reports.append)

    def handoff(batch: list[Any], _at: float, **kwargs: Any) -> None:
        assert batch == []
        receipts.append(kwargs["receipt"])

    reader.trim.counted(stream_info(1100, 150, first=950, last=1099), groups_info(99, 100, 1000), handoff)
    # Not corrected yet (the writer has not committed the gap): the same counters plus 50 more trimmed.
    reader.trim.counted(stream_info(1150, 150, first=1000, last=1149), groups_info(99, 100, 1050), handoff)
    reader.trim.counted(stream_info(1150, 150, first=1000, last=1149), groups_info(99, 100, 1050), handoff)
    assert [r.count for r in reports] == [850, 50] and len(receipts) == 2
    assert reader.trim.uncorrected == 900
    receipts[0]()
    assert list(reader.trim.committed) == [850]
