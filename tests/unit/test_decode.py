"""Decoding what arrives on the event channel: real envelopes, batches, and garbage that must be refused."""
from __future__ import annotations

import base64
import json
import math

import pytest

from webui.collector.decode import MalformedEvent, decode_body, decode_envelope, normalise


def envelope(body, content_type="application/json") -> bytes:
    return json.dumps({"body": base64.b64encode(json.dumps(body).encode()).decode(), "content-type": content_type,
                       "content-encoding": "utf-8", "properties": {"body_encoding": "base64"}}).encode()


def test_a_single_event_and_a_task_multi_batch_both_decode_to_lists():
    event = {"type": "task-started", "uuid": "a"}
    assert decode_envelope(envelope(event)) == [event]
    assert decode_envelope(envelope([event, event])) == [event, event]


def test_pickle_is_refused_whatever_the_body_says():
    with pytest.raises(MalformedEvent, match="refused content type"):
        decode_body(b"cos\nsystem\n(S'echo hi'\ntR.", "application/x-python-serialize", "binary")


@pytest.mark.parametrize("payload", [b"nope", b"[]", b'{"body": 1}', b'{"body": "***", "properties": '
                                     b'{"body_encoding": "base64"}}'])
def test_garbage_envelopes_raise_malformed(payload):
    with pytest.raises(MalformedEvent):
        decode_envelope(payload)


def test_normalise_keeps_the_raw_timestamp_and_stamps_the_receipt_time():
    event = normalise({"type": "task-succeeded", "uuid": "a", "timestamp": 1700000000.5, "utcoffset": -5.5,
                       "runtime": 0.25, "result": "'ok'", "pid": 7, "clock": 3}, local_received=1700000001.0)
    assert event["timestamp"] == 1700000000.5 and event["local_received"] == 1700000001.0
    assert event["runtime"] == 0.25 and event["pid"] == 7 and event["utcoffset"] == -5.5


@pytest.mark.parametrize("raw, reason", [
    ("a string", "not an object"),
    ({"type": 5}, "bad event type"),
    ({"type": "task-started"}, "uuid"),
    ({"type": "task-started", "uuid": ""}, "uuid"),
    ({"type": "task-started", "uuid": "x" * 300}, "uuid"),
    ({"type": "worker-heartbeat"}, "hostname"),
    ({"type": "Task Started!", "uuid": "a"}, "bad event type"),
])
def test_unusable_events_are_refused_with_a_reason(raw, reason):
    with pytest.raises(MalformedEvent, match=reason):
        normalise(raw, 1.0)


def test_fields_of_the_wrong_type_are_dropped_not_trusted():
    event = normalise({"type": "task-received", "uuid": "a", "timestamp": "yesterday", "pid": True,
                       "retries": "3", "hostname": ["list"], "runtime": math.inf, "loadavg": [1, "x", 2],
                       "terminated": "yes", "name": "n" * 1000}, 1.0)
    for key in ("timestamp", "pid", "retries", "hostname", "runtime", "loadavg", "terminated"):
        assert key not in event
    assert len(event["name"]) == 255


def test_custom_fields_are_kept_but_bounded():
    event = normalise({"type": "task-progress", "uuid": "a", "current": 3, "note": "n" * 100_000,
                       "blob": {"k": ["v" * 100_000]}}, 1.0)
    assert event["current"] == 3 and len(event["note"]) == 16_384 and len(event["blob"]) == 16_384
