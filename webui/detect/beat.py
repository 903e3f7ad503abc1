"""Beat detectors: an entry that missed its runs, and beat itself down — as the beat page judges them.

Both read the board (webui.beat.board.load_board), so an alert and the page never disagree. The board is as of
the beat watcher's last pass; when that pass is old (`Board.stale`) the findings say "as of" when.
"""
from __future__ import annotations

from typing import Any

from webui.beat import status as beat_status
from webui.beat.board import Board, load_board
from webui.detect.findings import DetectContext, Finding
from webui.detect.phrasing import duration, moment
from webui.detect.registry import Detector, Param, register


def _as_of(board: Board, now: float) -> str:
    if board.stale and board.as_of is not None:
        return f" (as of {moment(board.as_of, now)}: the beat watcher has not run since)"
    return ""


def beat_missed(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """Entries the board calls missed, with at least `misses` scheduled runs passed without a fire."""
    board = load_board(ctx.settings, ctx.app_timezone, now=ctx.now)
    findings = []
    for entry in board.missed:
        status = entry.status
        if status.missed_count < int(params["misses"]):
            continue
        name = entry.row.name
        overdue = f", due {moment(status.next_due_at, ctx.now)}" if status.next_due_at is not None else ""
        last = f"; last ran {moment(status.last_fired_at, ctx.now)}" if status.last_fired_at is not None else ""
        failed = status.publish_failed
        # Beat did try: the alert says so, and with what error, so nobody goes looking for a stopped beat.
        why = f"; the publish failed {moment(failed.at, ctx.now)}: {failed.failed}" if failed is not None else ""
        findings.append(Finding(
            "beat_missed", name, name,
            f"Beat entry {name} ({entry.row.task}) missed {status.missed_count} runs{overdue}{last}{why}"
            + _as_of(board, ctx.now),
            {"task": entry.row.task, "source": entry.row.source, "missed_count": status.missed_count,
             "next_due_at": status.next_due_at, "last_fired_at": status.last_fired_at,
             "schedule": entry.schedule_text, "stale": board.stale,
             "publish_failed": failed.failed if failed is not None else None},
            f"/beat/{entry.row.id}", float(status.missed_count), status.next_due_at))
    return findings


def beat_down(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """The board's liveness verdict is "down"."""
    board = load_board(ctx.settings, ctx.app_timezone, now=ctx.now)
    liveness = board.liveness
    if liveness.state != "down":
        return []
    silent = ctx.now - liveness.last_fire_at if liveness.last_fire_at is not None else None
    return [Finding(
        "beat_down", "beat", "beat", f"Beat looks down: {liveness.reason}" + _as_of(board, ctx.now),
        {"reason": liveness.reason, "last_fire_at": liveness.last_fire_at, "stale": board.stale,
         "silent_for": duration(silent) if silent is not None else None},
        "/beat", silent, liveness.last_fire_at)]


register(Detector(
    "beat_missed", "Beat entry missed", "beat entry", beat_missed,
    {"misses": Param(1, "Scheduled runs passed without a fire before it counts (the entry must also be "
                     "missed, not just late: the slot after the late one has passed too).",
                     min=1, max=beat_status.MAX_COUNTED_MISSES)},
    "A periodic task did not run when its schedule said (plus grace). Beat may be down, the entry's schedule "
    "may have changed, or its runs go to a queue nobody consumes."))
register(Detector(
    "beat_down", "Beat down", "beat", beat_down,
    {},
    "No entry has fired for longer than the shortest period plus its grace, or beat stopped answering pings. "
    "Only one beat may run: check its process, its logs, and its lock (RedBeat) or schedule file."))
