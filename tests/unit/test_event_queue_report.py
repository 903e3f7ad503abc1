"""What the durable event queue says it dropped: counts, reasons, times, and "at least" once it lost count."""
from __future__ import annotations

from webui.collector.event_queue import DropReport, EventQueueOptions, _death_reason

OPTIONS = EventQueueOptions("webui-events", max_length=100_000, max_bytes=1024, ttl=60.0, expires=600.0)


def test_it_counts_events_not_messages_and_spans_their_timestamps():
    report = DropReport()
    report.add([{"timestamp": 5.0}, {"timestamp": 3.0}], "maxlen")  # a task.multi batch
    report.add([{"timestamp": 9.0}], "expired")
    report.add([], "maxlen")  # undecodable: a message, no event
    assert (report.messages, report.events, report.first, report.last) == (3, 3, 3.0, 9.0)
    text = report.describe(OPTIONS)
    assert text.startswith("the durable event queue webui-events dropped 3 events in 3 messages")
    assert "2 past its bound (event_queue_max_length=100000, event_queue_max_bytes=1024)" in text
    assert "1 older than event_queue_ttl=60 s" in text


def test_a_full_dropped_queue_makes_the_count_a_lower_bound():
    report = DropReport(full=True)
    report.add([{"timestamp": 1.0}], "maxlen")
    assert "dropped at least 1 events in at least 1 messages" in report.describe(OPTIONS)


def test_the_dropped_queue_keeps_a_tenth_of_the_bound_and_at_least_a_thousand_or_the_bound():
    assert OPTIONS.dropped_max == 10_000
    assert EventQueueOptions("q", 5_000, 1, 1.0, 60.0).dropped_max == 1_000
    assert EventQueueOptions("q", 20, 1, 1.0, 60.0).dropped_max == 20


def test_the_reason_comes_from_the_dead_letter_headers():
    assert _death_reason({"x-first-death-reason": "expired"}) == "expired"
    assert _death_reason({"x-death": [{"reason": "maxlen", "count": 1}]}) == "maxlen"
    assert _death_reason({}) == "unknown"
