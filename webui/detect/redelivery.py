"""What the monitored app's configuration says about redelivery: the broker, its visibility timeout, acks_late.

Task events never say whether a task is acks_late or how the broker redelivers (celery-facts §7), so the
lost-task and duplicate-execution detectors read the Celery app the monitor was given (`-A proj`). Everything
here answers None when the app does not know (no app, or a task it does not register), and the summaries then
say what would happen either way rather than guess.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_VISIBILITY_TIMEOUT = 3600.0  # kombu's Redis default
REDIS = "redis"
RABBITMQ = "rabbitmq"
_TRANSPORTS = {"redis": REDIS, "rediss": REDIS, "sentinel": REDIS, "amqp": RABBITMQ, "amqps": RABBITMQ,
               "pyamqp": RABBITMQ, "librabbitmq": RABBITMQ}


@dataclass(frozen=True)
class TaskAcks:
    acks_late: bool | None
    reject_on_worker_lost: bool | None


def broker_kind(app: Any) -> str | None:
    """"redis", "rabbitmq", another kombu transport name, or None without an app."""
    if app is None:
        return None
    try:
        connection = app.connection_for_read()  # lazy: does not connect
        try:
            name = str(connection.transport_cls)
        finally:
            connection.release()
    except Exception:  # noqa: BLE001 - an unparsable URL: the collector reports it elsewhere
        return None
    return _TRANSPORTS.get(name, name)


def visibility_timeout(app: Any) -> float:
    """The app's Redis `broker_transport_options.visibility_timeout` (kombu's default 3600 s)."""
    options = getattr(getattr(app, "conf", None), "broker_transport_options", None) or {}
    value = options.get("visibility_timeout") if isinstance(options, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 \
        else DEFAULT_VISIBILITY_TIMEOUT


def task_acks(app: Any, name: str | None) -> TaskAcks:
    """Whether the app's task `name` is acks_late (and rejects on worker loss); None when it is not registered."""
    if app is None or not name:
        return TaskAcks(None, None)
    try:
        task = app.tasks.get(name)
    except Exception:  # noqa: BLE001 - finalizing the app imports the user's modules, which may fail
        # Tasks made before finalizing failed are still in the registry itself.
        task = getattr(app, "_tasks", {}).get(name)
    if task is None:
        return TaskAcks(None, None)
    return TaskAcks(bool(task.acks_late), bool(getattr(task, "reject_on_worker_lost", False)))
