"""Polling helper for tests that wait on another process (worker, collector, server)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition not met",
) -> T:
    """Call `predicate` until it returns something truthy and return that value.

    Raises AssertionError naming `message`, the timeout and the last value seen, so a failing test says what
    it was waiting for rather than just "timed out".
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} (waited {timeout:g}s; last value: {value!r})")
        time.sleep(interval)
