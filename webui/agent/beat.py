"""Beat fire stamps: in the beat process, each fire's task-sent record names its entry and the time it was due.

Celery's events carry no entry name (celery-facts §5.1): without this the beat watcher recognises a fire by its
task name and arguments, and can only infer how late it was. On `beat_init` the companion wraps the scheduler's
`apply_async` (every scheduler sends through it: Celery's own `apply_entry`, RedBeat's `maybe_due`,
django-celery-beat's): while it runs, the thread knows which entry is firing and when it was due, and the
`before_task_publish` hook adds `beat_entry` and `beat_due` to the task-sent record. A publish that raises
(broker down, an unknown task) becomes a `beat-publish-failed` record, then the exception goes on to the
scheduler, which logs it as it always did. Celery sends `before_task_publish` before it talks to the broker, so
a failed publish usually has a task id: the failure names it (`uuid`). The task-sent record made for it is held
until `after_task_publish` and so never sent (webui.agent.Hooks.on_publish); the collector still marks a fire
failed rather than counting it when a task-sent record of that id does arrive (an older companion,
webui.beat.beat_rows).

The due time is the entry's slot before the fire advances it: `schedule.remaining_estimate(last_run_at)` from
the schedule's now (negative when beat fires late), the same computation beat itself makes in `is_due`.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr

from webui.agent import records

_firing = threading.local()  # .stamp: {"beat_entry": …, "beat_due": …} while an entry's task is being sent;
# .uuid: the id of the task-sent record made for it, if `before_task_publish` got that far


def current_stamp() -> dict[str, Any] | None:
    return getattr(_firing, "stamp", None)


def note_sent(uuid: str) -> None:
    """`before_task_publish` made a task-sent record for the entry firing now (if one is): remember its id."""
    if current_stamp() is not None:
        _firing.uuid = uuid


def due_time(entry: Any) -> float | None:
    """When `entry` (not advanced yet) was due, as a Unix time; None when its schedule cannot say."""
    try:
        remaining = entry.schedule.remaining_estimate(entry.last_run_at)
        return time.time() + remaining.total_seconds()
    except Exception:  # noqa: BLE001 - a custom schedule without the estimate: the stamp names the entry only
        return None


def publish_failed(stamp: dict[str, Any], task: str | None, exc: BaseException,
                   uuid: str | None = None) -> dict[str, Any]:
    """The record of a fire whose task could not be sent: `uuid` is its task-sent record's, when it has one."""
    return records.record("beat-publish-failed", anon_nodename(), name=task, uuid=uuid, **stamp,
                          exception=saferepr(exc, records.REPR_MAXSIZE))


def hook(scheduler: Any, publisher: Any) -> None:
    """Wrap `scheduler.apply_async` (this instance's) so each fire is stamped and a failed one recorded."""
    if getattr(scheduler, "_webui_agent_stamps", False):
        return
    send = scheduler.apply_async

    def apply_async(entry: Any, *args: Any, **kwargs: Any) -> Any:
        stamp = {"beat_entry": getattr(entry, "name", None), "beat_due": due_time(entry)}
        _firing.stamp, _firing.uuid = stamp, None
        try:
            return send(entry, *args, **kwargs)
        except Exception as exc:
            publisher.put(publish_failed(stamp, getattr(entry, "task", None), exc, _firing.uuid))
            raise
        finally:
            _firing.stamp = _firing.uuid = None

    scheduler.apply_async = apply_async
    scheduler._webui_agent_stamps = True
