"""Per-minute rollups: what the writer adds to `task_minute` for each batch, and the runtime percentiles."""
from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.support.waiting import wait_for
from webui.collector import rollups
from webui.collector.rollups import BUCKET_COLUMNS, VALUE_COLUMNS, accumulate, event_minute, percentile
from webui.collector.writer import CollectorStats, Writer
from webui.privacy import Redactor
from webui.store.database import open_database
from webui.store.schema import upgrade

T0 = 1_700_000_040.0  # a minute boundary


@dataclass
class State:
    name: str | None


def ev(etype: str, uuid: str = "a", ts: float | None = T0 + 1, received: float = T0 + 2, **fields) -> dict:
    return {"type": etype, "uuid": uuid, "timestamp": ts, "local_received": received, **fields}


def value(row: list[float], column: str) -> float:
    return row[VALUE_COLUMNS.index(column)]


def test_it_counts_each_event_kind_in_the_minute_it_happened_under_the_tasks_name():
    events = [ev("task-received"), ev("task-started"), ev("task-succeeded", ts=T0 + 61, runtime=0.2),
              ev("task-received", "b"), ev("task-failed", "b"), ev("task-retried", "b"),
              ev("task-revoked", "b"), ev("task-rejected", "b")]
    rows = accumulate([(e, None) for e in events], {"a": State("add"), "b": State("fail")})
    assert set(rows) == {(int(T0), "add"), (int(T0) + 60, "add"), (int(T0), "fail")}
    first = rows[(int(T0), "add")]
    assert (value(first, "received"), value(first, "started"), value(first, "succeeded")) == (1, 1, 0)
    later = rows[(int(T0) + 60, "add")]
    assert value(later, "succeeded") == 1 and value(later, "runtime_sum") == 0.2 and value(later, "runtime_count") == 1
    failing = rows[(int(T0), "fail")]
    assert [value(failing, c) for c in rollups.COUNT_COLUMNS] == [1, 0, 0, 1, 1, 1, 1]


def test_it_takes_the_name_from_the_merged_state_because_started_and_succeeded_carry_only_the_uuid():
    rows = accumulate([(ev("task-started"), None)], {"a": State("add")})
    assert list(rows) == [(int(T0), "add")]


def test_a_task_whose_name_is_unknown_is_counted_under_an_empty_name():
    rows = accumulate([(ev("task-started"), None), (ev("task-started", "gone"), None)], {"a": State(None)})
    assert value(rows[(int(T0), "")], "started") == 2


def test_repairs_and_other_events_are_not_counted():
    events = [(ev("task-succeeded", runtime=1.0), "backend"), (ev("task-started"), "inspect"),
              (ev("task-sent"), None), (ev("task-custom-progress"), None)]
    assert accumulate(events, {"a": State("add")}) == {}


@pytest.mark.parametrize("ts", [None, "soon", 0.0, T0 + 2 * 86_400, float("nan"), float("inf")])
def test_an_event_without_a_believable_timestamp_counts_in_the_minute_it_arrived(ts):
    assert event_minute(ev("task-started", ts=ts, received=T0 + 125)) == int(T0) + 120


def test_runtimes_fill_the_histogram_bucket_whose_bounds_hold_them():
    events = [ev("task-succeeded", str(i), runtime=r) for i, r in enumerate([0.0, 0.001, 0.0011, 0.3, 999.0])]
    events.append(ev("task-succeeded", "x", runtime=-1.0))  # nonsense: counted as a success, not as a runtime
    events.append(ev("task-succeeded", "y", runtime=True))
    row = accumulate([(e, None) for e in events], {})[(int(T0), "")]
    buckets = {c: value(row, c) for c in BUCKET_COLUMNS if value(row, c)}
    assert buckets == {"rt_b00": 2, "rt_b01": 1, "rt_b08": 1, "rt_b16": 1}
    assert value(row, "succeeded") == 7 and value(row, "runtime_count") == 5


def test_percentiles_are_interpolated_inside_the_bucket_that_holds_them():
    buckets = [0] * len(BUCKET_COLUMNS)
    buckets[9] = 100  # 100 runs between 0.5 s and 1 s
    assert percentile(buckets, 0.5) == pytest.approx(0.75)
    assert percentile(buckets, 0.95) == pytest.approx(0.975)
    buckets[0] = 100  # and 100 under 1 ms
    assert percentile(buckets, 0.5) == pytest.approx(0.001)
    assert percentile(buckets, 0.25) == pytest.approx(0.0005)
    assert percentile(buckets, 0.95) == pytest.approx(0.5 + 0.5 * 0.9)


def test_percentiles_of_an_empty_or_open_ended_histogram():
    assert percentile([0] * len(BUCKET_COLUMNS), 0.5) is None
    assert percentile([0] * (len(BUCKET_COLUMNS) - 1) + [3], 0.95) == 300.0  # "at least 300 s"


def test_the_writer_adds_each_batch_to_the_minutes_row_in_the_same_transaction(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/w.sqlite3")
    upgrade(db)
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.05)
    writer.start()
    writer.leading.wait(5)

    def send(*events: dict) -> None:
        writer.put_events(list(events), T0 + 2)
        wait_for(lambda: writer.pending() == 0, message="the writer never wrote the batch")

    send({"type": "task-received", "uuid": "a", "name": "add", "timestamp": T0 + 1},
         {"type": "task-started", "uuid": "a", "timestamp": T0 + 1})
    send({"type": "task-succeeded", "uuid": "a", "timestamp": T0 + 2, "runtime": 0.02, "result": "3"},
         {"type": "task-started", "uuid": "b", "timestamp": T0 + 3},  # named later in the same batch
         {"type": "task-received", "uuid": "b", "name": "add", "timestamp": T0 + 1})
    writer.put_repairs([{"type": "task-succeeded", "uuid": "b", "timestamp": T0 + 4}], "backend")
    time.sleep(0.3)
    writer.stop()
    with db.connection_context():
        rows = db.execute_sql("SELECT minute, name, received, started, succeeded, runtime_count, rt_b04 "
                              "FROM task_minute").fetchall()
    db.close()
    assert rows == [(int(T0), "add", 2, 2, 1, 1, 1)]  # the repair's success is not a count

