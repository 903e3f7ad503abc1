"""Worker liveness: online from heartbeats, offline after missed ones or worker-offline, never flapping."""
from __future__ import annotations

from webui.collector.workers import (
    WorkerState,
    apply_worker_event,
    silent_task_event_workers,
    sweep,
    touch_from_task_event,
)


def heartbeat(at: float, etype: str = "worker-heartbeat", **fields):
    values = {"type": etype, "hostname": "w1@h", "local_received": at, "timestamp": at, "freq": 2.0,
              "active": 1, "processed": 10, "loadavg": [0.5, 0.4, 0.3], "pid": 42, "sw_ident": "py-celery",
              "sw_ver": "5.7.0", "sw_sys": "Linux"}
    values.update(fields)
    return values


def new_worker(at: float = 100.0) -> WorkerState:
    return WorkerState("w1@h", at, at)


def test_a_heartbeat_brings_a_worker_online_once():
    worker = new_worker()
    first = apply_worker_event(worker, heartbeat(100.0, "worker-online"))
    again = apply_worker_event(worker, heartbeat(102.0))
    assert first is not None and first.online and first.reason == "worker-online"
    assert again is None  # no transition: still online
    assert worker.online and worker.freq == 2.0 and worker.processed == 10 and worker.loadavg == "[0.5, 0.4, 0.3]"


def test_one_missed_heartbeat_does_not_mark_a_worker_offline():
    worker = new_worker()
    apply_worker_event(worker, heartbeat(100.0))
    assert sweep([worker], now=104.5, missed_heartbeats=3.0) == []  # two intervals late
    changes = sweep([worker], now=106.5, missed_heartbeats=3.0)  # past three intervals
    assert [(c.online, c.reason) for c in changes] == [(False, "heartbeat timeout")]
    assert not worker.online and worker.offline_reason == "heartbeat timeout" and worker.status_changed_at == 106.5


def test_worker_offline_then_online_again_records_both_transitions():
    worker = new_worker()
    apply_worker_event(worker, heartbeat(100.0, "worker-online"))
    offline = apply_worker_event(worker, heartbeat(101.0, "worker-offline"))
    online = apply_worker_event(worker, heartbeat(102.0, "worker-online"))
    assert (offline.online, offline.reason) == (False, "worker-offline")
    assert (online.online, online.reason) == (True, "worker-online")


def test_a_control_heartbeat_keeps_the_regular_interval():
    worker = new_worker()
    apply_worker_event(worker, heartbeat(100.0))
    control = {"type": "worker-heartbeat", "hostname": "w1@h", "local_received": 101.0, "freq": 5.0,
               "sw_ident": "py-celery"}
    apply_worker_event(worker, control)
    assert worker.freq == 2.0 and worker.processed == 10 and worker.last_seen == 101.0


def test_task_events_count_as_signs_of_life():
    worker = new_worker()
    apply_worker_event(worker, heartbeat(100.0))
    touch_from_task_event(worker, 105.0)
    assert sweep([worker], now=110.0, missed_heartbeats=3.0) == []
    assert worker.last_task_event_at == 105.0


def test_a_task_event_received_before_worker_offline_does_not_bring_the_worker_back():
    # One batch merges its worker events before its task events: arrival order decides, not merge order.
    worker = new_worker()
    apply_worker_event(worker, heartbeat(100.0, "worker-online"))
    apply_worker_event(worker, heartbeat(103.0, "worker-offline"))

    assert touch_from_task_event(worker, 102.5) is None
    assert not worker.online and worker.offline_reason == "worker-offline"
    back = touch_from_task_event(worker, 104.0)  # a task event after it went offline: it is alive again
    assert back is not None and back.online and worker.online


def test_silent_workers_are_those_processing_tasks_without_task_events():
    busy, idle = new_worker(), WorkerState("w2@h", 100.0, 100.0)
    apply_worker_event(busy, heartbeat(100.0, processed=10))
    apply_worker_event(idle, heartbeat(100.0, hostname="w2@h", processed=3))
    assert silent_task_event_workers([busy, idle], now=100.0, window=60) == []  # baselines taken
    apply_worker_event(busy, heartbeat(150.0, processed=25))
    apply_worker_event(idle, heartbeat(150.0, hostname="w2@h", processed=3))
    assert silent_task_event_workers([busy, idle], now=161.0, window=60) == [("w1@h", 15)]
    touch_from_task_event(busy, 162.0)  # task events arrive: no longer silent
    assert silent_task_event_workers([busy, idle], now=163.0, window=60) == []
