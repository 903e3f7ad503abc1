"""The companion's Redis Stream (webui.agent): read with a consumer group, acknowledged once committed.

The same contract as the durable event queue (webui.collector.event_queue), on a Redis Stream:
- **Acknowledged only once stored.** Entries are read with XREADGROUP; each read's entry ids travel in the
  writer's inbox as a receipt behind its records, the writer calls it once the batch holding them is committed,
  and this thread XACKs them. A collector SIGKILLed in between leaves them pending in the group.
- **Re-read on start.** A collector that starts claims every pending entry of the group (XAUTOCLAIM, whichever
  consumer read it: only the leader reads, so no other live consumer holds any) and hands them over as
  redelivered: the writer skips records already stored (webui.collector.redelivery), and a record that had been
  dropped as the repeat of an event is recognised by its timestamp (webui.collector.sources).
- **Bounded.** The workers trim the stream (`MAXLEN ~`, docs/companion.md); this reader holds at most
  `IN_FLIGHT` records handed over and not yet committed, so a slow database never fills the collector's memory.
- **Losses.** Entries the stream trimmed before the group read them are counted from XINFO on Redis 7+
  (webui.collector.stream_trim): on joining, with every read while behind (in one MULTI with the read, so the
  count is of the stream just before it), and every `_TRIM_CHECK_EVERY` s otherwise. Each loss is handed to
  `on_trimmed` (recorded as a gap), and once the writer committed it the group's `entries-read` is corrected, so
  it is counted once, across restarts too. Pending entries trimmed before their re-read are counted apart
  (XAUTOCLAIM names them), and logged.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import ResponseError

from webui.collector.acks import await_commits
from webui.collector.decode import MalformedEvent
from webui.collector.event_queue import STOP_WAIT
from webui.collector.stream_trim import (
    GroupState,
    StreamState,
    Trimmed,
    corrected_entries_read,
    count_trimmed,
    supports_counting,
)

log = logging.getLogger(__name__)

READ_COUNT = 1000  # entries per XREADGROUP, at most (and at most a writer's batch_size: one read, one commit)
IN_FLIGHT = 5000  # records handed to the writer and not committed yet, at most
_BLOCK_MS = 500  # how long a read waits for new entries (should_stop is checked between reads)
_ACK_POLL = 0.02  # seconds between acknowledgement checks while handed-over records wait for their commit
_TRIM_CHECK_EVERY = 5.0  # seconds between checks for trimmed records while caught up (behind: every read)


@dataclass(frozen=True)
class AgentStreamOptions:
    url: str
    stream: str  # the stream's key, or the RabbitMQ queue's name (webui.collector.agent_queue)
    group: str
    max_length: int = 100_000  # RabbitMQ only: the queue's x-max-length, as the workers declare it

    @classmethod
    def from_settings(cls, settings: Any) -> AgentStreamOptions | None:
        if not settings.agent_url:
            return None
        return cls(settings.agent_url, settings.agent_stream, settings.agent_group, settings.agent_max_length)


class _Receipts:
    """Entry ids handed to the writer, and those it committed (appended by the writer thread, acked here)."""

    def __init__(self) -> None:
        self.committed: deque[list[bytes]] = deque()
        self.in_flight = 0

    def receipt(self, ids: list[bytes]) -> Callable[[], None]:
        self.in_flight += len(ids)
        return lambda: self.committed.append(ids)

    def send(self, client: Any, options: AgentStreamOptions) -> None:
        while self.committed:
            ids = self.committed.popleft()
            client.xack(options.stream, options.group, *ids)
            self.in_flight -= len(ids)


class AgentReader:
    """What a reader of the companion's records is given, on either transport (webui.collector.agent_queue)."""

    def __init__(self, options: AgentStreamOptions, on_malformed: Callable[[MalformedEvent], None],
                 writer_alive: Callable[[], bool], batch_size: int = READ_COUNT,
                 on_trimmed: Callable[[Trimmed], None] | None = None) -> None:
        self.options = options
        self.count = max(1, min(READ_COUNT, batch_size))  # records per read, and per handoff
        self.on_malformed = on_malformed
        self.writer_alive = writer_alive
        self.on_trimmed = on_trimmed  # Redis only: records the stream trimmed before they were read


class AgentStreamReader(AgentReader):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Kept across runs: a loss reported before Redis failed is corrected in the group on the next run.
        self.trim = _TrimWatch(self.options, self.on_trimmed)

    @property
    def consumer(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def run(self, handoff: Callable[..., None], should_stop: Callable[[], bool]) -> None:
        """Read until told to stop (returns) or Redis fails (raises: the service retries with backoff)."""
        client = redis.Redis.from_url(self.options.url, socket_timeout=_BLOCK_MS / 1000 + 10,
                                      socket_connect_timeout=5)
        receipts = _Receipts()
        try:
            self._join_group(client)
            self.trim.check(client, handoff)  # what was trimmed while no collector read
            claimed = self._claim_pending(client, handoff, receipts)
            log.info("reading the companion stream %s (group %s, consumer %s; %d pending entries re-read)",
                     self.options.stream, self.options.group, self.consumer, claimed)
            self._forget_other_consumers(client)
            behind = True  # until a read comes back short: the backlog left while away
            while not should_stop():
                receipts.send(client, self.options)
                self.trim.correct(client)
                if receipts.in_flight >= IN_FLIGHT:
                    time.sleep(_ACK_POLL)
                    continue
                entries = self._read(client, handoff, behind, receipts.in_flight or self.trim.uncorrected)
                if entries:
                    self._hand_over(entries, handoff, receipts, redelivered=False)
                behind = len(entries) >= self.count
            self._finish(client, receipts)
        finally:
            client.close()

    def _read(self, client: Any, handoff: Callable[..., None], behind: bool, waiting: int) -> list[Any]:
        """One read. Behind, the workers may trim past the group at any moment: the read goes in one MULTI
        with the counters, checked as they were just before it. Caught up, a blocking read (and a check now
        and then: a loss that came between two reads shows once the group is caught up)."""
        group, stream, key = self.options.group, self.options.stream, {self.options.stream: ">"}
        if behind:
            pipe = client.pipeline(transaction=True)
            pipe.xinfo_stream(stream)
            pipe.xinfo_groups(stream)
            pipe.xreadgroup(group, self.consumer, key, count=self.count)
            stream_info, groups, replies = pipe.execute()
            self.trim.counted(stream_info, groups, handoff)
        else:
            if time.monotonic() - self.trim.checked_at >= _TRIM_CHECK_EVERY:
                self.trim.check(client, handoff)
            replies = client.xreadgroup(group, self.consumer, key, count=self.count,
                                        block=1 if waiting else _BLOCK_MS)
        return [entry for _stream, entries in replies or () for entry in entries]

    def _join_group(self, client: Any) -> None:
        try:
            client.xgroup_create(self.options.stream, self.options.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _claim_pending(self, client: Any, handoff: Callable[..., None], receipts: _Receipts) -> int:
        """Take over every entry read but not acknowledged (by this collector's predecessors): re-read them."""
        start, claimed = "0-0", 0
        while True:
            reply: Any = client.xautoclaim(self.options.stream, self.options.group, self.consumer, min_idle_time=0,
                                      start_id=start, count=self.count)
            start, entries = reply[0], reply[1]
            trimmed = reply[2] if len(reply) > 2 else []
            if trimmed:
                log.warning("%d companion records read by a collector that stopped before storing them were "
                            "trimmed from %s before this re-read: lost", len(trimmed), self.options.stream)
            live = [(entry_id, fields) for entry_id, fields in entries if fields is not None]
            if live:
                self._hand_over(live, handoff, receipts, redelivered=True)
                claimed += len(live)
            if start in (b"0-0", "0-0"):
                return claimed

    def _forget_other_consumers(self, client: Any) -> None:
        """Consumers of stopped collectors hold nothing any more (claimed above): remove their names."""
        for consumer in client.xinfo_consumers(self.options.stream, self.options.group):
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else name
            if name != self.consumer and not consumer.get("pending"):
                client.xgroup_delconsumer(self.options.stream, self.options.group, name)

    def _hand_over(self, entries: list[Any], handoff: Callable[..., None], receipts: _Receipts,
                   redelivered: bool) -> None:
        records = []
        for _entry_id, fields in entries:
            try:
                records.append(_decode(fields))
            except MalformedEvent as exc:
                self.on_malformed(exc)  # still acknowledged with the others: it would never decode
        handoff(records, time.time(), redelivered=redelivered,
                receipt=receipts.receipt([entry_id for entry_id, _ in entries]))

    def _finish(self, client: Any, receipts: _Receipts) -> None:
        """Stopping: let the writer commit what it was handed and acknowledge it, so a restart repeats nothing."""
        def send() -> None:
            receipts.send(client, self.options)
            self.trim.correct(client)

        await_commits(lambda: bool(receipts.in_flight or self.trim.uncorrected), send, self.writer_alive,
                      STOP_WAIT, _ACK_POLL)
        if receipts.in_flight:
            log.info("stopping with %d companion records not committed: they are read again on start",
                     receipts.in_flight)


class _TrimWatch:
    """Counts what the stream trimmed before the group read it (webui.collector.stream_trim), reports it, and
    once the writer committed the report corrects the group's `entries-read`, so that it is counted once."""

    def __init__(self, options: AgentStreamOptions, on_trimmed: Callable[[Trimmed], None] | None) -> None:
        self.options = options
        self.on_trimmed = on_trimmed
        self.checked_at = 0.0  # monotonic
        self.uncorrected = 0  # reported, not yet corrected in the group: still in its counters, not new
        self.committed: deque[int] = deque()  # reports the writer committed (appended by its thread)
        self._unsupported_said = False

    def check(self, client: Any, handoff: Callable[..., None]) -> None:
        if self.on_trimmed is None:
            return
        # The group changes only by this thread's reads: the two replies describe one moment of the group.
        stream_info = client.xinfo_stream(self.options.stream)
        self.counted(stream_info, client.xinfo_groups(self.options.stream), handoff)

    def counted(self, stream_info: dict[str, Any], groups: list[dict[str, Any]],
                handoff: Callable[..., None]) -> None:
        """Report what the counters say was trimmed unread, beyond what was reported already."""
        self.checked_at = time.monotonic()
        if self.on_trimmed is None:
            return
        stream = StreamState.from_xinfo(stream_info)
        group = GroupState.from_xinfo(groups, self.options.group)
        if not supports_counting(stream):
            if not self._unsupported_said:
                self._unsupported_said = True
                log.warning("this Redis (before 7.0) does not count a stream's entries: companion records "
                            "trimmed from %s before the collector read them cannot be counted (size the "
                            "workers' max_length for the longest downtime)", self.options.stream)
            return
        trimmed = count_trimmed(stream, group) if group is not None else None
        if trimmed is None or trimmed.count <= self.uncorrected:
            return
        new = Trimmed(trimmed.count - self.uncorrected, trimmed.after, trimmed.before)
        self.uncorrected += new.count
        self.on_trimmed(new)
        # Behind the gap in the writer's inbox: called once it is committed, then the group is corrected.
        handoff([], time.time(), receipt=lambda: self.committed.append(new.count))

    def correct(self, client: Any) -> None:
        """Account committed reports in the group's counter (XGROUP SETID … ENTRIESREAD), at its current id."""
        while self.committed:
            count = self.committed[0]
            stream = StreamState.from_xinfo(client.xinfo_stream(self.options.stream))
            group = GroupState.from_xinfo(client.xinfo_groups(self.options.stream), self.options.group)
            entries_read = corrected_entries_read(stream, group, count) if group is not None else None
            if group is not None and entries_read is not None:
                client.xgroup_setid(self.options.stream, self.options.group, group.last_delivered,
                                    entries_read=entries_read)
            else:
                log.warning("could not record the %d trimmed records in the group %s's counters: a restarted "
                            "collector may count them again", count, self.options.group)
            self.committed.popleft()
            self.uncorrected -= count


def _decode(fields: dict[Any, Any]) -> Any:
    body = fields.get(b"r") if b"r" in fields else fields.get("r")
    if body is None:
        raise MalformedEvent("companion stream entry without a record")
    return decode_record(body)


def decode_record(body: bytes | str) -> Any:
    """One record as the companion sent it (webui.agent.transport.encode), on either transport."""
    try:
        return json.loads(body)
    except ValueError as exc:
        raise MalformedEvent(f"companion record is not JSON: {exc}") from None
