"""The live hub's pure parts: which topics two snapshots imply, the throttle, the hub's fan-out, Origin checks."""
from __future__ import annotations

import random
import threading
import time

import pytest

from webui.live import TOPICS, LiveHub, Snapshot, Subscription, Throttle, changed_topics, decode_mark, encode_mark
from webui.views.live import origin_problem

BASE = Snapshot(task_event_received=100.0, task_max_id=7, worker_event_max_id=3, worker_last_seen=99.0,
                inspection_at=90.0, gaps=(1, 1), collector=("leader", True, None, None, 0), heartbeat_at=101.0)


def with_(**changes) -> Snapshot:
    return Snapshot(**{**BASE.__dict__, **changes})


def test_it_reports_nothing_when_nothing_changed():
    assert changed_topics(BASE, with_()) == set()


@pytest.mark.parametrize(("change", "topics"), [
    ({"task_event_received": 100.5}, {"tasks", "events", "overview"}),
    ({"task_max_id": 8}, {"tasks", "overview"}),
    ({"task_log_max_id": 5}, {"tasks", "overview"}),  # a task logged a line (webui.agent.logs): its page refreshes
    ({"worker_event_max_id": 4}, {"events", "workers", "overview"}),
    ({"worker_last_seen": 101.0}, {"workers"}),  # a heartbeat: not the overview, not the events stream
    ({"inspection_at": 120.0}, {"workers"}),
    ({"gaps": (2, 1)}, {"overview"}),
    ({"collector": ("leader", False, None, "connection refused", 0)}, {"overview"}),
    ({"heartbeat_at": 102.0}, set()),  # the collector's heartbeat alone is no news…
    ({"heartbeat_at": 110.0}, {"queues"}),  # …except every 10 s, for the sampled queue depths
], ids=["task-event", "new-task", "task-log-line", "worker-transition", "heartbeat", "inspection", "gap", "collector",
        "collector-heartbeat", "queues-tick"])
def test_it_names_the_topics_a_change_touches(change, topics):
    assert changed_topics(BASE, with_(**change)) == topics


def test_the_first_rows_of_an_empty_store_are_changes():
    assert changed_topics(Snapshot(), with_(worker_event_max_id=None, worker_last_seen=None)) >= {"tasks", "events"}


def test_the_throttle_lets_topics_out_at_most_once_per_interval():
    throttle = Throttle(interval=1.0, phase=lambda: 0.0)
    assert throttle.take(0.0) == [] and throttle.wait_time(0.0) is None
    throttle.add(["tasks", "events"], 9.5)
    assert throttle.take(10.0) == ["events", "tasks"]
    throttle.add(["tasks"], 10.2)
    assert throttle.take(10.4) == []
    assert throttle.wait_time(10.4) == pytest.approx(0.6)
    throttle.add(["workers"], 10.5)  # merged with what waits
    assert throttle.take(11.0) == ["tasks", "workers"]
    assert throttle.take(12.0) == []


def test_after_a_quiet_spell_the_next_interval_is_put_off_by_a_random_part_of_one():
    throttle = Throttle(interval=1.0, phase=lambda: 0.75)
    throttle.add(["tasks"], 10.0)
    assert throttle.take(10.0) == ["tasks"]  # a quiet spell ends: at once
    throttle.add(["tasks"], 10.1)
    assert throttle.wait_time(10.1) == pytest.approx(1.65)  # an interval and three quarters after the first
    assert throttle.take(11.7) == []
    assert throttle.take(11.75) == ["tasks"]
    throttle.add(["tasks"], 11.8)  # topics kept coming: from here on, whole intervals
    assert throttle.take(12.7) == []
    assert throttle.take(12.75) == ["tasks"]


def test_a_trickle_of_changes_still_comes_at_most_once_per_interval():
    """Each change comes when the socket is free, so each ends a quiet spell and draws a phase: no message may
    then come sooner than an interval after the one before (it did when the phase moved the interval back)."""
    rng = random.Random(7)
    throttle = Throttle(interval=1.0, phase=rng.random)
    sent, now = [], 0.0
    while now < 60.0:
        throttle.add(["tasks"], now)
        if throttle.take(now):
            sent.append(now)
        now = round(now + 0.05, 2)
        if throttle.take(now):
            sent.append(now)
    assert len(sent) > 20
    assert min(b - a for a, b in zip(sent, sent[1:], strict=False)) >= 1.0 - 1e-9


def test_pages_told_of_one_change_at_once_spread_their_next_messages_over_the_interval():
    rng = random.Random(4)
    throttles = [Throttle(interval=1.0, phase=rng.random) for _ in range(50)]
    for throttle in throttles:
        throttle.add(["tasks"], 100.0)
        assert throttle.take(100.0) == ["tasks"]  # one change, every page at once
        throttle.add(["tasks"], 100.01)  # and the stream goes on
    due = [throttle.last_sent + 1.0 for throttle in throttles]
    assert 101.0 <= min(due) and max(due) < 102.0
    per_tenth = [sum(1 for d in due if 101.0 + k / 10 <= d < 101.0 + (k + 1) / 10) for k in range(10)]
    assert max(per_tenth) <= 12  # not one burst of 50: about 5 in each tenth of the interval
    for throttle, at in zip(throttles, due, strict=True):  # each then keeps its own cadence
        assert throttle.take(at) == ["tasks"]
        throttle.add(["tasks"], at + 0.01)
        assert throttle.wait_time(at) == pytest.approx(1.0)


def test_a_subscription_waits_for_offered_topics_then_throttles():
    subscription = Subscription(interval=0.3, phase=lambda: 0.0)
    assert subscription.wait(timeout=0.05) == []
    threading.Timer(0.05, subscription.offer, args=(["tasks"],)).start()
    started = time.monotonic()
    assert subscription.wait(timeout=2) == ["tasks"]
    subscription.offer(["events"])
    assert subscription.wait(timeout=2) == ["events"]
    assert time.monotonic() - started >= 0.3  # the second message waited out the interval


class FakeDb:
    def connect(self, reuse_if_open: bool = False) -> None:
        pass

    def is_closed(self) -> bool:
        return True

    def close(self) -> None:
        pass


def test_the_hub_fans_changes_out_to_every_socket_and_caps_them():
    snapshots = iter([BASE] + [with_(task_event_received=200.0)] * 1000)
    hub = LiveHub(FakeDb(), max_sockets=2, interval=0.02, read=lambda db: next(snapshots))
    try:
        first, second = hub.subscribe(baseline=BASE), hub.subscribe(baseline=BASE)
        assert first and second
        assert hub.subscribe() is None  # over the cap
        assert first.wait(timeout=3) == ["events", "overview", "tasks"]
        assert second.wait(timeout=3) == ["events", "overview", "tasks"]
        hub.unsubscribe(first)
        assert hub.subscribe() is not None  # a freed place is taken again
    finally:
        hub.stop()


def test_the_hub_survives_a_failing_store():
    calls = []

    def read(db):
        calls.append(1)
        if len(calls) < 3:
            raise OSError("database is away")
        return BASE if len(calls) == 3 else with_(worker_event_max_id=9)

    hub = LiveHub(FakeDb(), max_sockets=1, interval=0.02, read=read)
    try:
        subscription = hub.subscribe(baseline=BASE)
        assert subscription and subscription.wait(timeout=3) == ["events", "overview", "workers"]
    finally:
        hub.stop()


def test_a_mark_comes_back_as_the_snapshot_it_was():
    assert decode_mark(encode_mark(BASE)) == BASE
    assert decode_mark(encode_mark(Snapshot())) == Snapshot()  # an empty store


@pytest.mark.parametrize("text", [None, "", "not base64 at all!", encode_mark(BASE)[:-7], "W10", "e30",
                                  "x" * 5000, "WzEsMiwzLDQsNSw2LDcsOCw5XQ"])  # W10: [], e30: {}, last: 9 ints
def test_a_mark_that_is_not_ours_is_none(text):
    assert decode_mark(text) is None


def test_a_new_socket_is_told_what_changed_since_its_page_was_rendered():
    # The page was rendered at BASE; a task event was stored before its socket subscribed. The hub's first
    # look already sees it, so comparing looks alone would never tell this socket.
    hub = LiveHub(FakeDb(), max_sockets=3, interval=0.02, read=lambda db: with_(task_event_received=150.0))
    try:
        behind = hub.subscribe(baseline=BASE)
        current = hub.subscribe(baseline=with_(task_event_received=150.0))
        unknown = hub.subscribe()
        assert behind and current and unknown
        assert behind.wait(timeout=3) == ["events", "overview", "tasks"]
        assert unknown.wait(timeout=3) == sorted(TOPICS)  # no mark (a reconnect): everything, once
        assert current.wait(timeout=0.3) == []  # nothing changed since its page
        assert behind.wait(timeout=0.3) == [] and unknown.wait(timeout=0.3) == []  # once only
    finally:
        hub.stop()


@pytest.mark.parametrize(("origin", "host"), [
    (None, "127.0.0.1:5555"),  # no browser
    ("http://127.0.0.1:5555", "127.0.0.1:5555"),
    ("https://Monitor.example.com", "monitor.example.com"),  # TLS ends at a proxy
    ("http://monitor.example.com", "monitor.example.com"),
    ("http://[::1]:5555", "[::1]:5555"),
])
def test_it_lets_in_this_sites_pages(origin, host):
    assert origin_problem(origin, host) is None


@pytest.mark.parametrize(("origin", "host"), [
    ("http://evil.example", "127.0.0.1:5555"),
    ("http://127.0.0.1:6666", "127.0.0.1:5555"),
    ("http://127.0.0.1", "127.0.0.1:5555"),
    ("null", "127.0.0.1:5555"),
    ("http://monitor.example.com:8080", "monitor.example.com"),
    ("http://[::1", "[::1]:5555"),
])
def test_it_refuses_other_sites(origin, host):
    assert "Origin" in origin_problem(origin, host)
