"""/metrics' settled totals, kept in the database and advanced by the leading collector.

/metrics' counters are sums over stored rows (webui.store.metrics_queries). Summing 10 million task rows takes
seconds, over a minute with the table out of the cache: too long for the first scrape of every process. So the
leading collector sums each row once, when it has settled, into `task_total`, and `metrics_checkpoint` records
how far those sums reach; a process starts from them and reads only the rows above.

The invariant, for each family of rows (tasks by id, failures by `failed_at`, rollups by minute), B being the
checkpoint's boundary for it:

    `task_total` holds what every row ever stored below B added — the rows still stored and those retention
    deleted — and every row at or above B is still stored.

So the totals are `task_total` plus the stored rows at or above B, in any process, at any time. What keeps it:
- B only grows. `advance` moves it in one transaction with the sums of exactly the rows it passes (old B to
  new B, read just before; rows below a boundary no longer change). The move is an UPDATE conditional on the old
  boundaries, so of two advancers at once (a leader and the one taking over from it, a `webui prune` run by
  hand) one adds its sums and the other, finding the row moved, adds nothing.
- Retention deletes task rows and rollup minutes only below B (the committed one, read when it deletes) and
  adds them nowhere: they are counted already. The fold of pruned rows and the checkpoint are one thing, so no
  row counts twice, and none is left out. `retention.prune` advances the checkpoint before it deletes anything.
- A process reads the checkpoint before and after the rows, and reads again if it moved: a moved B may let
  retention delete rows the read expected to find above the old one.

Before the first advance there is no checkpoint row, and `task_total` holds what retention folded in before
this version (and minute 0 of `task_minute` the rollups it pruned). A process then sums every stored row and
`task_total` itself, once (seconds on a big store), and nothing is pruned. The first advance sums every settled
row; the next ones only the rows settled since: a range of the task key, of `task_failed_at` and of the
rollups' key. The leader advances every `ADVANCE_INTERVAL`, so a new process reads a few minutes of rows.

The wait buckets are the leader's `metrics_wait_buckets`; a process configured with others counts each summed
bucket under its first bound at or above (`metrics_queries._add_folded`).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from peewee import Database

from webui.collector.leader import sleep_while_leading
from webui.store.database import discard_connection
from webui.store.metrics_queries import (
    OVERFLOW,
    ROLLUP_SUMS,
    Covered,
    Sums,
    checkpoint,
    failure_boundary,
    read_failures,
    read_rollups,
    rollup_boundary,
    task_boundary,
    task_reader,
)

log = logging.getLogger(__name__)

ADVANCE_INTERVAL = 60.0
SLOW_ADVANCE = 1.0  # seconds: an advance slower than this is logged (the first one, on a big store)
Totals = dict[tuple[str, str, str], float]  # `task_total` values by (name, metric, label)


def target(now: float, current: Covered | None) -> Covered:
    """Where an advance at `now` takes the checkpoint: the settled rows' boundaries, never below `current`."""
    goal = Covered(task_boundary(now, current.tasks if current else None) or 0, failure_boundary(now),
                   rollup_boundary(now))
    if current is None:
        return goal
    return Covered(max(current.tasks, goal.tasks), max(current.failures, goal.failures),
                   max(current.minutes, goal.minutes))


def advance(db: Database, wait_bounds: Sequence[float], now: float) -> Covered:
    """Add the rows settled since the checkpoint to `task_total` and move it past them; return where it is.

    The models must be bound to `db` (webui.store.database.bind_models)."""
    current = checkpoint()
    goal = target(now, current)
    if goal == current:
        return goal
    started = time.perf_counter()
    low = (None, None, None) if current is None else (current.tasks, current.failures, current.minutes)
    totals = as_totals(read_rollups(low[2], goal.minutes), read_failures(low[1], goal.failures),
                       task_reader(wait_bounds)(low[0], goal.tasks), wait_bounds)
    with db.atomic():
        moved = _move(db, current, goal, now)
        if moved:
            _add_totals(db, totals)
    took = time.perf_counter() - started
    if took > SLOW_ADVANCE:
        log.info("/metrics checkpoint: summed the rows settled %s in %.1fs",
                 "so far" if current is None else "since the last advance", took)
    return goal if moved else (checkpoint() or goal)  # not moved: another advancer got there first


def as_totals(rollups: Sums, failures: Sums, tasks: Sums, wait_bounds: Sequence[float]) -> Totals:
    """Range sums as `task_total` values: what `metrics_queries.settled_sums` reads back."""
    totals: Totals = {}
    for name, values in rollups.items():
        totals.update({(name, "rollup", column): v for column, v in zip(ROLLUP_SUMS, values, strict=True) if v})
    for (name, label), (count,) in failures.items():
        totals[(name, "failed", label)] = count
    labels = [repr(float(bound)) for bound in wait_bounds] + [OVERFLOW]
    for name, (sent, *buckets, waited_us) in tasks.items():
        totals.update({(name, "wait", label): n for label, n in zip(labels, buckets, strict=True) if n})
        totals.update({key: v for key, v in (((name, "sent", ""), sent), ((name, "wait_us", ""), waited_us)) if v})
    return totals


def _move(db: Database, current: Covered | None, goal: Covered, now: float) -> bool:
    """Move the checkpoint from `current` to `goal`; False if it is no longer at `current`."""
    p = db.param
    values = (goal.tasks, goal.failures, goal.minutes, now)
    if current is None:
        return db.execute_sql(
            "INSERT INTO metrics_checkpoint (id, task_below, failed_below, minute_below, advanced_at) "
            f"VALUES (1, {p}, {p}, {p}, {p}) ON CONFLICT (id) DO NOTHING", values).rowcount == 1
    return db.execute_sql(
        f"UPDATE metrics_checkpoint SET task_below = {p}, failed_below = {p}, minute_below = {p}, advanced_at = {p} "
        f"WHERE id = 1 AND task_below = {p} AND failed_below = {p} AND minute_below = {p}",
        (*values, current.tasks, current.failures, current.minutes)).rowcount == 1


def _add_totals(db: Database, totals: Totals) -> None:
    if totals:
        p = db.param
        db.cursor().executemany(
            f"INSERT INTO task_total (name, metric, label, value) VALUES ({p}, {p}, {p}, {p}) "
            "ON CONFLICT (name, metric, label) DO UPDATE SET value = task_total.value + excluded.value",
            [(*key, value) for key, value in totals.items()])


def advance_loop(db: Database, settings: Any, *, stop: threading.Event, alive: Callable[[], bool],
                 interval: float = ADVANCE_INTERVAL, clock: Callable[[], float] = time.time) -> None:
    """In the leading collector: advance at once, then every `interval` seconds until stopped or not leading."""
    wait_bounds = tuple(float(b) for b in settings.metrics_wait_buckets)
    while True:
        try:
            with db.connection_context():
                advance(db, wait_bounds, clock())
        except Exception as exc:  # noqa: BLE001 - the next advance sums what this one did not
            log.warning("advancing the /metrics checkpoint failed: %s", exc)
            discard_connection(db)
        if not sleep_while_leading(stop, alive, interval):
            return
