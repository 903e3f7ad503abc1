"""The pure parts of webui.control: when a stored task can be re-sent, rate syntax, signals, reply parsing."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from celery.utils.saferepr import saferepr

from webui import control
from webui.control import ControlResult, Reply
from webui.privacy import Redactor


@dataclass
class StoredTask:
    state: str = "FAILURE"
    name: str | None = "proj.add"
    args: str | None = "(1, 2)"
    kwargs: str | None = "{'x': [1, 2.5, None, True, b'z']}"
    uuid: str = "t1"


def test_it_retries_a_failed_task_with_literal_arguments() -> None:
    task = StoredTask()
    assert control.retry_problem(task) is None
    assert control._parse_arguments(task.args, task.kwargs) == ([1, 2], {"x": [1, 2.5, None, True, b"z"]})


def test_it_refuses_arguments_the_privacy_filter_cut_short() -> None:
    stored = Redactor(max_args_size=20).clean_event({"args": repr(("a" * 100,))})["args"]
    problem = control.retry_problem(StoredTask(args=stored))
    assert problem is not None and "size cap" in problem


def test_it_refuses_masked_values() -> None:
    stored = Redactor().clean_event({"kwargs": "{'password': 'hunter2', 'user': 'bob'}"})["kwargs"]
    assert stored == "{'password': '***', 'user': 'bob'}"
    problem = control.retry_problem(StoredTask(kwargs=stored))
    assert problem is not None and "masked" in problem


def test_it_refuses_object_reprs() -> None:
    problem = control.retry_problem(StoredTask(args=saferepr((object(),), 1024)))
    assert problem is not None and "not plain literals" in problem


def test_it_refuses_what_celery_truncated() -> None:
    long_string = saferepr(("a" * 2000,), 1024)  # "('aaaa...',)": a valid literal, but not the argument
    deep = saferepr(({"k": {"n": [1, [2, [3]]]}},), 1024, maxlevels=3)  # "({'k': {'n': [...]}},)"
    long_list = saferepr((list(range(1000)),), 1024)  # "([0, 1, …, 22..., ...],)"
    for args in (long_string, deep, long_list):
        assert control.retry_problem(StoredTask(args=args)) is not None, args


def test_it_never_evaluates_code() -> None:
    problem = control.retry_problem(StoredTask(args="(__import__('os').system('touch /tmp/x'),)"))
    assert problem is not None and "not plain literals" in problem


def test_it_needs_a_failed_task_with_a_name_and_stored_arguments() -> None:
    assert "SUCCESS" in (control.retry_problem(StoredTask(state="SUCCESS")) or "")
    assert "name" in (control.retry_problem(StoredTask(name=None)) or "")
    assert "not stored" in (control.retry_problem(StoredTask(args=None, kwargs=None)) or "")
    assert "not a dict" in (control.retry_problem(StoredTask(kwargs="[1]")) or "")
    assert control.retry_problem(None) is not None


@pytest.mark.parametrize("rate", ["10", "1.5", "10/s", "100/m", "2/h", "0", " 5 / m ", ".5/s"])
def test_it_accepts_celerys_rate_syntax(rate: str) -> None:
    assert control.validate_rate(rate) is None


@pytest.mark.parametrize("rate", ["", "fast", "10/d", "10/", "-1/m", "1e3", "10/m/s", "/m"])
def test_it_refuses_anything_else(rate: str) -> None:
    problem = control.validate_rate(rate)
    assert problem is not None and "e.g." in problem


def test_signal_names_come_from_the_system() -> None:
    assert control.validate_signal("SIGKILL") == "SIGKILL"
    assert control.validate_signal("term") == "SIGTERM"
    for bad in ("SIGNOPE", "SIG_DFL", "9", ""):
        with pytest.raises(ValueError):
            control.validate_signal(bad)


def test_inputs_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(ValueError):
        control.revoke(None, [])
    with pytest.raises(ValueError):
        control.revoke(None, ["a\nb"])
    with pytest.raises(ValueError):
        control.rate_limit(None, "proj.add", "lots")
    with pytest.raises(ValueError):
        control.time_limit(None, "proj.add", soft=10, hard=5)
    with pytest.raises(ValueError):
        control.pool_grow(None, "w@h", 0)
    with pytest.raises(ValueError):
        control.autoscale(None, "w@h", 2, 5)
    with pytest.raises(ValueError):
        control.add_consumer(None, "w@h", "has space")


def test_replies_are_parsed_per_worker() -> None:
    raw = [{"b@h": {"ok": "new rate limit set successfully"}}, {"a@h": {"error": "unknown task"}},
           {"celerybeat@h": {"ok": "pong"}}, {"c@h": None}, "garbage"]
    replies = control.parse_replies(raw)
    assert replies == [Reply("a@h", False, "unknown task"), Reply("b@h", True, "new rate limit set successfully"),
                       Reply("c@h", True, "done")]
    assert control.silent_workers(["a@h", "d@h", "b@h"], replies) == ["d@h"]
    assert control.parse_replies(None) == []


def test_long_replies_are_shortened() -> None:
    (reply,) = control.parse_replies([{"w@h": {"ok": "tasks {" + "x" * 5000 + "} flagged as revoked"}}])
    assert len(reply.message) <= control.MESSAGE_MAX + 1


def test_a_result_is_ok_when_someone_acknowledged() -> None:
    assert ControlResult("revoke", "t", [Reply("a", False, "e"), Reply("b", True, "ok")], []).ok
    assert not ControlResult("revoke", "t", [Reply("a", False, "e")], ["b"]).ok
    assert not ControlResult("revoke", "t", [], ["b"]).ok
    assert ControlResult("shutdown", "w", [], []).ok
    assert not ControlResult("shutdown", "w", error="broker unreachable: refused").ok


def test_chunked_revokes_merge_into_one_result() -> None:
    merged = control._merge([
        ControlResult("revoke", "3 tasks", [Reply("a", True, "1"), Reply("b", True, "1")], []),
        ControlResult("revoke", "3 tasks", [Reply("a", False, "boom")], ["b"]),
    ])
    assert merged.replies == [Reply("a", False, "boom")] and merged.silent == ["b"]


def test_registered_lines_give_their_limits() -> None:
    assert control.registered_limits("proj.add [rate_limit=10/m time_limit=30]") == (
        "proj.add", {"rate_limit": "10/m", "time_limit": "30"})
    assert control.registered_limits("proj.add") == ("proj.add", {})


def test_an_unreachable_broker_is_an_error_not_an_exception() -> None:
    from celery import Celery

    result = control.rate_limit(Celery(broker="redis://127.0.0.1:1/0"), "proj.add", "1/s", timeout=0.2)
    assert result.error is not None and result.error.startswith("broker unreachable") and not result.ok
