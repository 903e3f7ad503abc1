"""A redelivered message keeps only the events the store does not hold yet (webui.collector.redelivery)."""
from __future__ import annotations

from webui.collector.redelivery import REDELIVERED, fresh_items, redelivered_uuids, task_event_key
from webui.collector.workers import WorkerState


def started(uuid: str = "t1", clock: int = 7, ts: float = 100.0) -> dict:
    return {"type": "task-started", "uuid": uuid, "hostname": "w1@h", "timestamp": ts, "clock": clock, "pid": 1}


def heartbeat(ts: float) -> dict:
    return {"type": "worker-heartbeat", "hostname": "w1@h", "timestamp": ts, "freq": 2.0, "active": 0,
            "processed": 3, "clock": 1}


def test_it_skips_a_task_event_already_stored_and_keeps_a_new_one():
    stored = {task_event_key(started())}
    items, skipped = fresh_items([(REDELIVERED, [started(), started(clock=8, ts=101.0)], 5.0)], stored, {})
    assert skipped == 1
    [(kind, events, received)] = items
    assert (kind, received) == ("events", 5.0)
    assert [e["clock"] for e in events] == [8]


def test_it_skips_a_copy_of_an_event_handed_over_earlier_in_the_same_batch():
    items, skipped = fresh_items([("events", [started()], 1.0), (REDELIVERED, [started()], 2.0)], set(), {})
    assert skipped == 1
    assert items[1] == ("events", [], 2.0)


def test_it_keeps_events_that_differ_in_any_part_of_their_identity():
    stored = {task_event_key(started())}
    others = [started(uuid="t2"), started(clock=8), started(ts=100.5), {**started(), "type": "task-received"},
              {**started(), "hostname": "w2@h"}]
    _, skipped = fresh_items([(REDELIVERED, others, 1.0)], stored, {})
    assert skipped == 0


def test_it_leaves_other_items_alone_and_passes_malformed_events_on_to_be_counted():
    items, skipped = fresh_items([("gap-open", ("k", "why"), 1.0), (REDELIVERED, ["garbage", {"type": 3}], 2.0)],
                                 set(), {})
    assert skipped == 0
    assert items == [("gap-open", ("k", "why"), 1.0), ("events", ["garbage", {"type": 3}], 2.0)]


def test_it_skips_worker_events_no_newer_than_what_the_worker_row_holds():
    worker = WorkerState("w1@h", 1.0, 1.0, online=True, heartbeat_timestamp=200.0)
    offline = {"type": "worker-offline", "hostname": "w1@h", "timestamp": 150.0}
    items, skipped = fresh_items([(REDELIVERED, [heartbeat(199.0), offline, heartbeat(201.0)], 3.0)], set(),
                                 {"w1@h": worker})
    assert skipped == 2
    assert [e["timestamp"] for e in items[0][1]] == [201.0]


def test_it_skips_a_repeated_worker_offline_for_a_worker_already_offline():
    worker = WorkerState("w1@h", 1.0, 1.0, online=False, heartbeat_timestamp=100.0)
    offline = {"type": "worker-offline", "hostname": "w1@h", "timestamp": 150.0}
    _, skipped = fresh_items([(REDELIVERED, [offline], 3.0)], set(), {"w1@h": worker})
    assert skipped == 1


def test_the_uuids_to_look_up_are_those_of_redelivered_messages_only():
    items = [("events", [started("a")], 1.0), (REDELIVERED, [started("b"), "junk", {"uuid": 5}], 2.0)]
    assert redelivered_uuids(items) == ["b"]
