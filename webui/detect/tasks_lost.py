"""Lost tasks: LOST in the store (webui.detect.lost_marker marked them) within the last `window_minutes`.

A LOST task was STARTED on a worker that went offline without finishing it. What happens next depends on
whether the task is acks_late (celery-facts §7), which its events do not say: the monitored app's own task
registry does, when the monitor was given the app (`-A proj`). The summary says what is known, or both fates.
"""
from __future__ import annotations

import json
from typing import Any

from webui.detect import phrasing, redelivery
from webui.detect.findings import DetectContext, Finding
from webui.detect.registry import Detector, Param, register

MAX_FINDINGS = 500


def run(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    since = ctx.now - float(params["window_minutes"]) * 60
    db = ctx.db
    p = db.param
    # A later event moves updated_at on but would also end LOST, unless it changed nothing (a late receipt):
    # updated_at >= since keeps every task lost in the window, and the detail's lost_at decides.
    rows = db.execute_sql(
        f"SELECT uuid, name, worker, started_at, detail FROM task WHERE state = {p} AND updated_at >= {p} "
        f"ORDER BY id DESC LIMIT {p}", ("LOST", since, MAX_FINDINGS)).fetchall()
    findings = []
    broker = None
    for uuid, name, worker, started_at, detail_text in rows:
        detail = _object(detail_text)
        lost_at = detail.get("lost_at")
        if not isinstance(lost_at, int | float) or lost_at < since:
            continue
        if broker is None:
            broker = redelivery.broker_kind(ctx.celery_app) or ""
        host = detail.get("lost_worker") or worker or "an unknown worker"
        acks = redelivery.task_acks(ctx.celery_app, name)
        findings.append(Finding(
            detector="task_lost", subject=uuid, scope=name or "",
            summary=(f"{name or 'A task of unknown name'} {uuid} was running on {host} when it went offline at "
                     f"{phrasing.moment(lost_at, ctx.now)}; {fate(acks.acks_late, broker, ctx.celery_app)}"),
            detail={"uuid": uuid, "name": name, "worker": host, "lost_at": lost_at, "started_at": started_at,
                    "reason": detail.get("lost_reason"), "acks_late": acks.acks_late, "broker": broker or None},
            link=f"/task/{uuid}", value=round(ctx.now - lost_at, 3), since=lost_at))
    return findings


def fate(acks_late: bool | None, broker: str | None, app: Any) -> str:
    """What becomes of the task's message, as far as the app's configuration tells."""
    if broker == redelivery.REDIS:
        again = f"Redis delivers it again after the visibility timeout ({redelivery.visibility_timeout(app):g} s)"
    elif broker == redelivery.RABBITMQ:
        again = "RabbitMQ delivers it again as soon as it notices the dead connection"
    else:
        again = "the broker delivers it again"
    if acks_late:
        return f"it is acks_late: {again}, and it runs a second time."
    if acks_late is False:
        return "it is not acks_late: its message was acknowledged when it started, so it is lost for good."
    return (f"if it is acks_late, {again}; otherwise its message was acknowledged when it started and it is lost "
            "for good (the monitor's app does not register this task, so which is unknown).")


def _object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


register(Detector(
    name="task_lost", title="Lost task", scope_kind="task", run=run,
    params={"window_minutes": Param(60, "Report tasks lost in the last this many minutes.", min=1, max=10080)},
    description="A task that was running on a worker that went offline (heartbeats stopped, or a shutdown "
                "that never finished it), marked LOST by the collector. With acks_late the broker delivers it "
                "again; otherwise it is lost for good."))
