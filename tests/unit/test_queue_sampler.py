"""The queue sampler's pure parts: Redis key names, what a message says about itself, which queues."""
from __future__ import annotations

import json

from celery import Celery
from kombu import Queue

from webui.collector.queue_sampler import (
    Sample,
    choose_queues,
    configured_queues,
    consumers_by_queue,
    peek_message,
    redis_keys,
    valid_name,
)

SEP = "\x06\x16"


def test_it_names_the_priority_lists_as_kombu_does():
    assert redis_keys("celery", [0, 3, 6, 9], SEP) == [
        (0, "celery"), (3, "celery\x06\x163"), (6, "celery\x06\x166"), (9, "celery\x06\x169")]


def test_it_always_counts_the_bare_list_and_respects_the_prefix_and_a_custom_separator():
    assert redis_keys("q", [5, 1], ":", prefix="app:") == [(0, "app:q"), (1, "app:q:1"), (5, "app:q:5")]
    assert redis_keys("q", list(range(10)), ":")[-1] == (9, "q:9")
    assert len(redis_keys("q", [0, 0, 3], SEP)) == 2


def test_a_celery_message_tells_its_task_id_but_no_time():
    message = {"headers": {"id": "abc", "task": "t"}, "properties": {"correlation_id": "abc", "priority": 0}}
    assert peek_message(json.dumps(message).encode()) == ("abc", None)


def test_a_message_with_a_timestamp_tells_when_it_was_sent():
    message = {"headers": {"timestamp": 1700000000.5}, "properties": {"correlation_id": "x"}}
    assert peek_message(json.dumps(message)) == ("x", 1700000000.5)
    assert peek_message(json.dumps({"properties": {"timestamp": 17}})) == (None, 17.0)


def test_garbage_in_a_queue_is_not_an_error():
    for raw in (None, b"", b"not json", b"[1, 2]", json.dumps({"headers": "x", "properties": 3}).encode(),
                json.dumps({"headers": {"id": 5, "timestamp": True}})):
        assert peek_message(raw) == (None, None)


def test_consumers_come_from_each_workers_active_queues():
    inspections = [
        ("w2@h", json.dumps({"active_queues": [{"name": "celery"}, {"name": "mail"}]})),
        ("w1@h", json.dumps({"active_queues": [{"name": "celery"}]})),
        ("w3@h", "not json"),
        ("w4@h", json.dumps({"stats": {}})),
        ("w5@h", json.dumps({"active_queues": [{"nope": 1}, "x", {"name": ""}]})),
    ]
    assert consumers_by_queue(inspections) == {"celery": ["w1@h", "w2@h"], "mail": ["w2@h"]}


def test_configured_queues_are_the_default_queue_and_task_queues():
    app = Celery(broker="memory://")
    app.conf.task_queues = [Queue("high"), Queue("low")]
    app.conf.task_default_queue = "default"
    assert configured_queues(app) == ["default", "high", "low"]


def test_queues_are_chosen_once_consumed_ones_first_and_bounded():
    assert choose_queues(["celery"], ["celery", "mail"], ["x", "bad\x00", "y" * 256, ""]) == ["celery", "mail", "x"]
    assert len(choose_queues([f"q{i}" for i in range(500)], limit=200)) == 200


def test_queue_names_are_bounded_and_free_of_control_characters():
    assert valid_name("<script>alert(1)</script>") and valid_name("a" * 255)
    assert not valid_name("a" * 256) and not valid_name("a\x06b") and not valid_name("") and not valid_name(3)


def test_a_sample_row_holds_its_detail_as_json():
    row = Sample("q", depth=3, detail={"priorities": {"0": 3}}).row()
    assert row["queue"] == "q" and row["depth"] == 3 and json.loads(row["detail"]) == {"priorities": {"0": 3}}
    assert Sample("q").row()["detail"] is None
