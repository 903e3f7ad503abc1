"""The companion's only I/O: records to its transport, from a background thread, never in a task's way.

- **Non-blocking.** `put` appends to a bounded in-memory buffer and returns: no lock, no network, no JSON in the
  task's thread. A background thread (one per process, started on the first record, again after a fork: prefork
  pool processes start with an empty buffer and a thread of their own) drains it every `FLUSH_INTERVAL` seconds
  and sends the records in batches through its transport (webui.agent.transport): a Redis Stream or a RabbitMQ
  queue.
- **Bounded.** The buffer holds at most `buffer_size` records; past that a record is dropped and counted. The
  stream or queue holds about `max_length` records (oldest dropped first), so a stopped monitor never fills it.
- **Exit.** The process's `atexit` sends what is still buffered (at most `EXIT_FLUSH` seconds): beat stopped by
  SIGTERM exits through `SystemExit` a few milliseconds after it sent a fire, and that fire's record must not die
  with the daemon thread. A prefork pool child leaves by `os._exit` and skips it; its tasks' records are sent by
  then, a `FLUSH_INTERVAL` after each.
- **Failure.** When Redis or RabbitMQ is slow or down the batch is dropped and counted, and the thread waits
  `RETRY_WAIT` before trying again (short connect and socket timeouts bound how long a send can take). Nothing
  raises into a task.
"""
from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
from typing import Any

from webui.agent import transport

log = logging.getLogger("webui.agent")

FLUSH_INTERVAL = 0.1  # seconds between drains of the buffer: the latency a record adds
BATCH = 500  # records per pipeline
RETRY_WAIT = 1.0  # seconds to wait after a failed send before the next one
LOG_EVERY = 10.0  # seconds between two warnings about dropped records
EXIT_FLUSH = 2.0  # seconds the process's exit waits for what is still buffered to be sent


class Publisher:
    def __init__(self, url: str, stream: str, max_length: int, buffer_size: int) -> None:
        self.url = url
        self.stream = stream
        self.max_length = max_length
        self.buffer_size = buffer_size
        self.transport = transport.for_url(url, stream, max_length)
        self.dropped = 0  # records lost in this process: buffer full, or the transport unavailable
        self.sent = 0
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush, EXIT_FLUSH)

    def _reset(self) -> None:
        """A fresh buffer and no thread: what a forked child must start with (its parent's thread is not here)."""
        self._buffer: collections.deque[dict[str, Any]] = collections.deque()
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._sending = False  # a batch is out of the buffer and not yet sent (or dropped)
        self._settled = threading.Condition()  # notified each time a batch is done with
        self.transport.forget()
        self._logged_at = 0.0
        self.dropped = 0
        self.sent = 0

    # -- the task's side -----------------------------------------------------------------------------------
    def put(self, record: dict[str, Any]) -> None:
        if self._thread is None or self._pid != os.getpid():
            self._start()
        if len(self._buffer) >= self.buffer_size:
            self.dropped += 1
            return
        self._buffer.append(record)

    def flush(self, timeout: float = EXIT_FLUSH) -> None:
        """Send what is buffered now (worker shutdown, process exit): waits at most `timeout` seconds."""
        if self._thread is None:
            return
        self._wake.set()
        with self._settled:
            self._settled.wait_for(lambda: not (self._buffer or self._sending), timeout)

    def _start(self) -> None:
        if self._pid != os.getpid():
            self._reset()
        thread = threading.Thread(target=self._run, name="webui-agent", daemon=True)
        self._thread = thread
        thread.start()

    # -- the background thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            while self._buffer:
                self._sending = True  # before the batch leaves the buffer: `flush` never sees neither
                sent = self._send(self._take())
                with self._settled:
                    self._sending = False
                    self._settled.notify_all()
                if not sent:
                    time.sleep(RETRY_WAIT)

    def _take(self) -> list[dict[str, Any]]:
        buffer, batch = self._buffer, list[dict[str, Any]]()
        while buffer and len(batch) < BATCH:
            batch.append(buffer.popleft())
        return batch

    def _send(self, batch: list[dict[str, Any]]) -> bool:
        try:
            self.transport.send(batch)
            self.sent += len(batch)
            return True
        except Exception as exc:  # noqa: BLE001 - whatever the broker or the network does, the worker goes on
            self.dropped += len(batch)
            self.transport.reset()
            now = time.monotonic()
            if now - self._logged_at >= LOG_EVERY:
                self._logged_at = now
                log.warning("webui agent: cannot write to %s (%s: %s); %d records dropped so far in process %d",
                            self.stream, type(exc).__name__, exc, self.dropped, os.getpid())
            return False
