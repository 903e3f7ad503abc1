"""Write one beat watcher pass (webui.beat.watcher.BeatPass), inside the writer's transaction.

Entries are upserted by (source, name) and marked removed when a source that read fine no longer lists them
(kept, with their fires: "this entry was deleted on Tuesday" is history too). Fires are inserted once per
(task, entry). Fires older than `FIRE_RETENTION` are deleted a batch at a time, like queue samples.

The companion's `beat-publish-failed` records (webui.agent.beat) are written here too, by the writer as it
reads them: one `beat_fire` row with `failed` set, on every live entry of that name and task. Its key is the
task-sent record's id when the publish got that far (the watcher later finds that task and must not count it as
a fire: its insert then does nothing), else one made from the record itself, so a record the stream delivers
again is stored once. A stamped task-sent record that comes after the watcher stored its fire without a stamp
(Celery's own task-sent event came first) gives that fire its due time (`fill_stamped_due`).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from typing import Any

from peewee import Database

from webui.beat.entries import ScheduleEntry
from webui.beat.fire_matching import stamp_of
from webui.beat.status import NO_TASK_PREFIX
from webui.collector.merge import AGENT_SOURCE
from webui.privacy import Redactor

log = logging.getLogger(__name__)

PUBLISH_FAILED = "beat-publish-failed"  # the companion's record type (webui.agent.beat)

FIRE_RETENTION = 30 * 86400.0
DELETE_BATCH = 1000
ENTRY_COLUMNS = ("task", "schedule", "args", "kwargs", "queue", "options", "enabled", "description",
                 "last_run_at", "total_run_count", "next_due_at")
# A change to these is a change of the entry itself (its history before it is about another schedule).
DEFINITION_COLUMNS = ("task", "schedule", "args", "kwargs")


def write_pass(db: Database, found: Any) -> None:
    ids = _write_entries(db, found.entries, found.read_ok, found.at)
    _write_fires(db, found.fires, ids)
    _delete_old_fires(db, found.at - FIRE_RETENTION)
    _write_watch(db, found)


def entry_values(entry: ScheduleEntry) -> dict[str, Any]:
    return {
        "task": entry.task, "schedule": json.dumps(entry.schedule, sort_keys=True),
        "args": json.dumps(entry.args, default=repr), "kwargs": json.dumps(entry.kwargs, default=repr, sort_keys=True),
        "queue": entry.queue, "options": json.dumps(entry.options, default=repr, sort_keys=True),
        "enabled": bool(entry.enabled), "description": entry.description, "last_run_at": entry.last_run_at,
        "total_run_count": entry.total_run_count, "next_due_at": entry.next_due_at,
    }


def _write_entries(db: Database, entries: list[ScheduleEntry], read_ok: set[str],
                   at: float) -> dict[tuple[str, str], int]:
    p = db.param
    stored = {(row[1], row[2]): row for row in db.execute_sql(
        f"SELECT id, source, name, removed_at, {', '.join(DEFINITION_COLUMNS)} FROM beat_entry").fetchall()}
    ids = {key: row[0] for key, row in stored.items()}
    seen = set()
    for entry in entries:
        key = (entry.source, entry.name)
        if key in seen:
            continue
        seen.add(key)
        values = entry_values(entry)
        row = stored.get(key)
        if row is None:
            columns = ("source", "name", *ENTRY_COLUMNS, "first_seen", "seen_at", "changed_at")
            params = (entry.source, entry.name, *(values[c] for c in ENTRY_COLUMNS), at, at, at)
            cursor = db.execute_sql(
                f"INSERT INTO beat_entry ({', '.join(columns)}) VALUES ({', '.join([p] * len(columns))}) "
                f"RETURNING id", params)
            ids[key] = int(cursor.fetchone()[0])
            continue
        changed = any(values[c] != row[4 + i] for i, c in enumerate(DEFINITION_COLUMNS))
        sets = ", ".join(f"{c} = {p}" for c in ENTRY_COLUMNS)
        db.execute_sql(
            f"UPDATE beat_entry SET {sets}, seen_at = {p}, removed_at = NULL"
            + (f", changed_at = {p}" if changed else "") + f" WHERE id = {p}",
            (*(values[c] for c in ENTRY_COLUMNS), at, *((at,) if changed else ()), row[0]))
    gone = [row[0] for key, row in stored.items() if key[0] in read_ok and key not in seen and row[3] is None]
    for entry_id in gone:
        db.execute_sql(f"UPDATE beat_entry SET removed_at = {p} WHERE id = {p}", (at, entry_id))
    return ids


def _write_fires(db: Database, fires: list[Any], ids: dict[tuple[str, str], int]) -> None:
    p = db.param
    stamps = _stored_stamps(db, [f.task_uuid for f in fires if f.due is None])
    rows = [(ids[f.entry], f.task_uuid, f.at, f.sender, f.due if f.due is not None else _due(stamps, f))
            for f in fires if f.entry in ids and f.at is not None]
    if rows:
        db.cursor().executemany(
            f"INSERT INTO beat_fire (entry_id, task_uuid, at, sender, due) VALUES ({p}, {p}, {p}, {p}, {p}) "
            f"ON CONFLICT (task_uuid, entry_id) DO NOTHING", rows)


def _stored_stamps(db: Database, uuids: list[str]) -> dict[str, tuple[str | None, float | None]]:
    """The stamps the store holds now for fires the watcher found without one: it read the task before the
    writer merged the companion's stamped record, which may be committed by now."""
    p = db.param
    stamps: dict[str, tuple[str | None, float | None]] = {}
    for start in range(0, len(uuids), 500):
        chunk = uuids[start:start + 500]
        stamps.update((uuid, stamp_of(detail)) for uuid, detail in db.execute_sql(
            f"SELECT uuid, detail FROM task WHERE uuid IN ({', '.join([p] * len(chunk))})", chunk).fetchall())
    return stamps


def _due(stamps: dict[str, tuple[str | None, float | None]], fire: Any) -> float | None:
    entry, due = stamps.get(fire.task_uuid, (None, None))
    return due if entry == fire.entry[1] else None


def publish_failures(items: list[tuple[str, Any, float]]) -> list[dict[str, Any]]:
    """The companion's `beat-publish-failed` records among a writer batch's events."""
    return [raw for kind, payload, _ in items if kind == "events" for raw in payload
            if isinstance(raw, dict) and raw.get("type") == PUBLISH_FAILED and raw.get("source") == AGENT_SOURCE
            and isinstance(raw.get("beat_entry"), str)]


def write_publish_failures(db: Database, failures: list[dict[str, Any]], redactor: Redactor) -> int:
    """Store each failed publish on the entries it names; returns the rows written (none for an entry the
    watcher has not read from its source yet: there is nothing to hang the attempt on)."""
    p = db.param
    written = 0
    for record in failures:
        entry_ids = _entries_named(db, record["beat_entry"], record.get("name"))
        if not entry_ids:
            log.info("beat-publish-failed for %r: no such entry watched yet, not kept", record["beat_entry"])
        at, due = _number(record.get("timestamp")), _number(record.get("beat_due"))
        exception = redactor.clean_event({"exception": str(record.get("exception") or "unknown error")})["exception"]
        for entry_id in entry_ids:
            db.execute_sql(
                f"INSERT INTO beat_fire (entry_id, task_uuid, at, sender, due, failed) "
                f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (task_uuid, entry_id) "
                f"DO UPDATE SET failed = excluded.failed, due = COALESCE(beat_fire.due, excluded.due)",
                (entry_id, _failure_key(record), at if at is not None else time.time(), _sender(record), due,
                 exception))
            written += 1
    return written


def stamped_sends(items: list[tuple[str, Any, float]]) -> list[tuple[float, str, str]]:
    """(due, task id, entry) of the companion's stamped task-sent records among a writer batch's events."""
    return [(float(raw["beat_due"]), raw["uuid"], raw["beat_entry"])
            for kind, payload, _ in items if kind == "events" for raw in payload
            if isinstance(raw, dict) and raw.get("type") == "task-sent" and raw.get("source") == AGENT_SOURCE
            and isinstance(raw.get("beat_entry"), str) and isinstance(raw.get("uuid"), str)
            and _number(raw.get("beat_due")) is not None]


def fill_stamped_due(db: Database, stamps: list[tuple[float, str, str]]) -> None:
    """Give the due time of its stamp to a fire the watcher stored before the stamp came: Celery's own
    task-sent event (task_send_sent_event) can reach the store before the companion's record, and the watcher
    then matched the task by its arguments, with no due time."""
    p = db.param
    db.cursor().executemany(
        f"UPDATE beat_fire SET due = {p} WHERE task_uuid = {p} AND due IS NULL AND failed IS NULL "
        f"AND entry_id IN (SELECT id FROM beat_entry WHERE name = {p})", stamps)


def _entries_named(db: Database, name: str, task: Any) -> list[int]:
    p = db.param
    sql = f"SELECT id FROM beat_entry WHERE name = {p} AND removed_at IS NULL"
    params: tuple[Any, ...] = (name,)
    if isinstance(task, str) and task:
        sql, params = sql + f" AND task = {p}", (name, task)
    return [int(row[0]) for row in db.execute_sql(sql, params).fetchall()]


def _failure_key(record: dict[str, Any]) -> str:
    uuid = record.get("uuid")
    if isinstance(uuid, str) and uuid:
        return uuid[:255]
    return f"{NO_TASK_PREFIX}{record.get('hostname')}:{record.get('pid')}:{record.get('timestamp')}"[:255]


def _sender(record: dict[str, Any]) -> str | None:
    host, pid = record.get("hostname"), record.get("pid")
    if not host:
        return None
    return f"{host}:{pid}"[:255] if pid is not None else str(host)[:255]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _delete_old_fires(db: Database, cutoff: float) -> None:
    p = db.param
    db.execute_sql(f"DELETE FROM beat_fire WHERE at < {p} AND id IN "
                   f"(SELECT id FROM beat_fire ORDER BY id LIMIT {DELETE_BATCH})", (cutoff,))


def _write_watch(db: Database, found: Any) -> None:
    p = db.param
    sources = json.dumps({name: asdict(report) for name, report in found.reports.items()})
    pinged = found.pong_nodes is not None
    answered = bool(found.pong_nodes)
    row = db.execute_sql("SELECT id FROM beat_watch WHERE id = 1").fetchone()
    if row is None:
        db.execute_sql("INSERT INTO beat_watch (id, task_cursor) VALUES (1, 0)")
    db.execute_sql(
        f"UPDATE beat_watch SET task_cursor = {p}, checked_at = {p}, sources = {p}"
        + (f", ping_at = {p}" if pinged else "")
        + (f", pong_at = {p}, pong_nodes = {p}" if answered else "") + " WHERE id = 1",
        (found.task_cursor, found.at, sources, *((found.ping_at,) if pinged else ()),
         *((found.ping_at, json.dumps(found.pong_nodes)) if answered else ())))
