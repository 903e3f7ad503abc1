"""Companion records the stream trimmed before the collector read them: counted, shown as a gap, counted once.

Real Redis (7+), the companion's own transport (`MAXLEN ~ 100`) writing records, the real collector reading them.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from tests.support.collector import running_collector
from tests.support.store import StoreReader
from tests.support.waiting import wait_for
from webui.agent import records
from webui.agent.transport import RedisStream
from webui.collector.agent_stream import AgentStreamOptions, AgentStreamReader
from webui.collector.stream_trim import GAP_AGENT_TRIMMED, Trimmed

STREAM = "webui:agent"
BOUND = 100  # the workers' max_length in these tests


@pytest.fixture
def agent_url(redis_db: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_db)
    try:
        if int(client.info("server")["redis_version"].split(".")[0]) < 7:
            pytest.skip("Redis before 7 does not count a stream's entries")
    finally:
        client.close()
    yield redis_db


@pytest.fixture
def app(agent_url: str) -> Celery:
    return Celery("trim-tests", broker=agent_url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'webui.sqlite3'}"


def write(url: str, count: int) -> list[str]:
    """`count` task-received records, through the companion's transport (one pipeline per 100, as it batches)."""
    transport = RedisStream(url, STREAM, BOUND)
    uuids = [str(uuid.uuid4()) for _ in range(count)]
    try:
        for start in range(0, count, 100):
            transport.send([records.record("task-received", "trim@test", uuid=u, name="tests.celeryapp.add",
                                           args="()", kwargs="{}", retries=0) for u in uuids[start:start + 100]])
    finally:
        if transport._client is not None:
            transport._client.close()
    return uuids


def stream_facts(url: str) -> tuple[int, dict[str, Any]]:
    """The stream's length and our group's XINFO GROUPS entry."""
    client = redis.Redis.from_url(url)
    try:
        groups = [g for g in client.xinfo_groups(STREAM) if g["name"] == b"webui"]
        return int(client.xlen(STREAM)), groups[0]
    finally:
        client.close()


def stored(store: StoreReader, uuids: list[str]) -> int:
    return sum(1 for u in uuids if store.task(u) is not None)


def trim_gaps(store: StoreReader) -> list[dict[str, Any]]:
    return [g for g in store.gaps() if g["kind"] == GAP_AGENT_TRIMMED]


def test_a_monitor_away_past_the_bound_reports_what_was_trimmed_once(
        app: Celery, agent_url: str, sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="webui.collector")
    store = StoreReader(sqlite_url)
    try:
        with running_collector(app, sqlite_url, agent_url=agent_url, reconcile=False):
            read_from = time.time()
            before = write(agent_url, 20)
            wait_for(lambda: stored(store, before) == 20, timeout=30, message="the first records never stored")
            wait_for(lambda: stream_facts(agent_url)[1]["pending"] == 0, timeout=10, message="never acked")
        assert stream_facts(agent_url)[1]["lag"] == 0  # everything read before the monitor stopped

        away_from = time.time()
        during = write(agent_url, 1000)
        away_until = time.time()
        kept, _group = stream_facts(agent_url)
        assert BOUND <= kept < 1000  # `~`: Redis trims whole nodes, so it keeps a little more than the bound
        expected = 1000 - kept  # all that is left is new: the 20 read before were trimmed first

        with running_collector(app, sqlite_url, agent_url=agent_url, reconcile=False) as collector:
            wait_for(lambda: trim_gaps(store), timeout=30, message="no gap for the trimmed records")
            wait_for(lambda: stored(store, during) == kept, timeout=30, message="the records kept never stored")
            wait_for(lambda: (store.status() or {}).get("events_dropped") == expected, timeout=10,
                     message="the collector's status never counted the trimmed records as dropped")
            assert collector.stats.events_dropped == expected
            wait_for(lambda: stream_facts(agent_url)[1]["lag"] == 0, timeout=10,
                     message="the group's counters were never corrected")
        gap = trim_gaps(store)[0]
        assert gap["events_lost"] == expected
        # From the last record read before the stop to the oldest record kept (stream ids are milliseconds, of
        # this host's clock).
        assert read_from - 0.01 <= gap["started_at"] <= away_from
        assert away_from - 0.01 <= gap["ended_at"] <= away_until
        assert f"{expected} companion records were trimmed" in gap["reason"] and "max_length" in gap["reason"]
        warnings = [r.getMessage() for r in caplog.records if "companion records were trimmed" in r.getMessage()]
        assert len(warnings) == 1 and f"{expected} companion" in warnings[0]
        assert "agent_max_length" in warnings[0] and "added between" in warnings[0]

        # A second restart reports nothing again; records written since are read as usual.
        with running_collector(app, sqlite_url, agent_url=agent_url, reconcile=False) as collector:
            after = write(agent_url, 10)
            wait_for(lambda: stored(store, after) == 10, timeout=30, message="records after the restart lost")
            time.sleep(0.5)
            assert collector.stats.events_dropped == 0
        assert len(trim_gaps(store)) == 1
        assert len([r for r in caplog.records if "companion records were trimmed" in r.getMessage()]) == 1
    finally:
        store.close()


class Held:
    """A writer stand-in for the reader alone: the first handoff waits until released (a slow database)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.records = 0

    def handoff(self, batch: list[Any], _received: float, *, redelivered: bool = False,
                receipt: Any = None) -> None:
        if batch and not self.entered.is_set():
            self.entered.set()
            self.release.wait(30)
        self.records += len(batch)
        if receipt is not None:
            receipt()  # "committed" at once


def test_a_collector_overtaken_while_reading_counts_what_it_missed(agent_url: str) -> None:
    write(agent_url, 30)
    held, reports = Held(), []
    reader = AgentStreamReader(AgentStreamOptions(agent_url, STREAM, "webui"), lambda exc: None, lambda: True,
                               batch_size=10, on_trimmed=reports.append)
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(held.handoff, stop.is_set), daemon=True)
    thread.start()
    try:
        assert held.entered.wait(10), "the reader never handed over its first read"
        assert reports == []  # 30 entries, none trimmed
        write(agent_url, 1000)  # meanwhile: the workers trim past the 10 it read
        kept, _group = stream_facts(agent_url)
        held.release.set()
        wait_for(lambda: held.records == 10 + kept, timeout=20, message="the reader never read what was kept")
        wait_for(lambda: stream_facts(agent_url)[1]["lag"] == 0, timeout=10, message="counters never corrected")
        assert [r.count for r in reports] == [1030 - 10 - kept]
        assert isinstance(reports[0], Trimmed) and reports[0].after is not None
    finally:
        stop.set()
        held.release.set()
        thread.join(10)
    assert not thread.is_alive()
