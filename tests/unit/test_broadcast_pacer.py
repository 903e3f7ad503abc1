"""Broadcasts from one process are paced: a burst goes at once, a flood is slowed, a caller that would wait too
long is refused with the reason — and a refused control is a 429 on Flower's API, never a broker error."""
from __future__ import annotations

import pytest

from webui.broadcasts import BroadcastPacer, TooManyBroadcasts


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_burst_goes_at_once_then_each_caller_waits_its_turn():
    clock = Clock()
    pacer = BroadcastPacer(rate=10, burst=5, max_wait=2, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.take()
    assert clock.slept == []
    pacer.take()
    assert clock.slept == [pytest.approx(0.1)]


def test_a_caller_that_would_wait_too_long_is_refused_with_the_reason():
    clock = Clock()
    pacer = BroadcastPacer(rate=10, burst=5, max_wait=0.25, clock=clock, sleep=lambda s: None)  # nobody waits
    for _ in range(7):  # 5 at once, then two queued turns (0.1 s and 0.2 s away)
        pacer.take()
    with pytest.raises(TooManyBroadcasts, match="more than 10 broadcasts a second"):
        pacer.take()  # its turn would be 0.3 s away


def test_a_quiet_spell_refills_the_burst():
    clock = Clock()
    pacer = BroadcastPacer(rate=10, burst=5, max_wait=2, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.take()
    clock.now += 10
    for _ in range(5):
        pacer.take()
    assert clock.slept == []


def test_a_control_over_the_pace_is_not_sent_and_flowers_api_answers_429(monkeypatch):
    from celery import Celery

    from webui import broadcasts, control
    from webui.api import flower_controls
    from webui.api.errors import ApiError

    monkeypatch.setattr(broadcasts, "PACER", BroadcastPacer(rate=1, burst=0, max_wait=0.1, sleep=lambda s: None))
    app = Celery(broker="memory://")

    result = control.revoke(app, ["a-task-id"], timeout=0.1)

    assert result.throttled and not result.ok and "broadcasts a second" in (result.error or "")
    monkeypatch.setattr(flower_controls, "celery_app", lambda: app)
    monkeypatch.setattr(flower_controls.audit, "record", lambda *a, **k: None)
    with pytest.raises(ApiError) as refused:
        flower_controls.run(control.revoke, ["a-task-id"], timeout=0.1)
    assert refused.value.status == 429 and "Not sent" in refused.value.message
