"""RabbitMQ acknowledgements sent only once the writer committed: shared by every queue the collector consumes.

Each handed-over message (or run of messages) carries a receipt into the writer's inbox behind its events; the
writer calls it once the batch holding them is committed, in inbox order, so `committed` only moves forward. The
thread that owns the channel then acknowledges everything up to it in one `basic_ack(multiple=True)`: the
channel must carry nothing but that queue's deliveries.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class DeliveryAcks:
    """Delivery tags handed to the writer, committed by it, and acknowledged (on the consumer's thread)."""

    def __init__(self) -> None:
        self.handed = 0
        self.committed = 0  # written by the writer thread only, in tag order (its inbox is FIFO)
        self.acked = 0

    def receipt(self, tag: int) -> Callable[[], None]:
        def committed() -> None:
            self.committed = tag
        return committed

    def waiting(self) -> bool:
        return self.committed < self.handed

    def send(self, channel: Any) -> None:
        committed = self.committed
        if committed > self.acked:
            channel.basic_ack(committed, multiple=True)
            self.acked = committed


def await_commits(waiting: Callable[[], bool], send: Callable[[], None], writer_alive: Callable[[], bool],
                  timeout: float, poll: float = 0.02) -> None:
    """Stopping: let the writer commit what it was handed (at most `timeout` s, while it runs) and acknowledge
    it, so the successor re-reads as little as possible."""
    deadline = time.monotonic() + timeout
    while waiting() and writer_alive() and time.monotonic() < deadline:
        send()
        time.sleep(poll)
    send()
