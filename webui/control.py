"""Controls: revoke/terminate, rate and time limits, pool and consumer operations, shutdown, and retry.

Every function validates its inputs first (a `ValueError` with a message fit for the user), then sends one
broadcast through `webui.broadcasts` (a connection of its own, see there) and returns a `ControlResult`: who
acknowledged, who answered with an error, and who was expected but stayed silent. A broker failure never
escapes as an exception: it is the result's `error` (callers answer 503). Auditing is the caller's job, since
only the caller knows who asked (`webui.audit.record(result.action, result.target, …)`).

Limits set here live in each worker's memory: they are lost when the worker restarts and never reach a worker
that starts later.
"""
from __future__ import annotations

import ast
import logging
import re
import signal as signals
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from webui import broadcasts
from webui.privacy import MASK, is_truncated

log = logging.getLogger(__name__)

# Commands whose worker sends no reply (shutdown stops it), or that are no broadcast at all (retry publishes a
# task): for these, "ok" means "sent".
NO_REPLY_ACTIONS = frozenset({"shutdown", "retry"})
# Revoking thousands of ids at once: one broadcast per chunk keeps each message (and each reply, which echoes
# the ids) a reasonable size.
REVOKE_CHUNK = 1000
# A worker's reply text is shown and audited; the revoke reply repeats every id, so keep it short.
MESSAGE_MAX = 500
# Celery cuts `argsrepr`/`kwargsrepr` at 1024 characters (`saferepr(x, 1024)`), appending "...".
CELERY_REPR_MAX = 1024
MAX_NAME_LENGTH = 255

_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*([smh]))?\s*$")
_BAD_NAME_RE = re.compile(r"[\x00-\x20\x7f]")  # control characters and spaces


@dataclass
class Reply:
    """One worker's answer."""

    worker: str
    ok: bool
    message: str  # the worker's "ok" text or its "error" text


@dataclass
class ControlResult:
    """What one control did: the replies, the silent workers, or why it could not be sent."""

    action: str
    target: str
    replies: list[Reply] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)
    error: str | None = None  # e.g. "broker unreachable: …" (callers answer 503)
    throttled: bool = False  # not sent: this process is over its broadcast pace (callers answer 429)

    @property
    def ok(self) -> bool:
        """No error, and at least one worker acknowledged (for no-reply commands: it was sent)."""
        if self.error is not None:
            return False
        if self.action in NO_REPLY_ACTIONS:
            return True
        return any(reply.ok for reply in self.replies)

    @property
    def acknowledged(self) -> list[Reply]:
        return [reply for reply in self.replies if reply.ok]

    @property
    def errored(self) -> list[Reply]:
        return [reply for reply in self.replies if not reply.ok]

    def summary(self) -> dict[str, Any]:
        """The replies as plain data, for the audit log and the JSON API."""
        return {"ok": [r.worker for r in self.acknowledged],
                "errors": {r.worker: r.message for r in self.errored},
                "silent": list(self.silent), "error": self.error}


# --- Task controls -----------------------------------------------------------------------------------------

def revoke(app: Celery, task_ids: list[str], *, terminate: bool = False, signal: str = "SIGTERM",
           timeout: float = 1.0) -> ControlResult:
    """Revoke `task_ids` on every worker; with `terminate`, also kill the pool process running one."""
    ids = [_check_task_id(task_id) for task_id in task_ids]
    if not ids:
        raise ValueError("No task ids to revoke.")
    action = "terminate" if terminate else "revoke"
    target = ids[0] if len(ids) == 1 else f"{len(ids)} tasks"
    arguments: dict[str, Any] = {"terminate": terminate}
    if terminate:
        arguments["signal"] = validate_signal(signal)
    results = [_send(app, action, target, "revoke", {"task_id": chunk, **arguments}, None, timeout)
               for chunk in _chunks(ids, REVOKE_CHUNK)]
    return _merge(results)


def rate_limit(app: Celery, task_name: str, rate: str, *, workers: list[str] | None = None,
               timeout: float = 1.0) -> ControlResult:
    """Set `task_name`'s rate limit (`"10/m"`; `"0"` removes it) on `workers`, or on all."""
    name = check_name(task_name, "task name")
    problem = validate_rate(rate)
    if problem:
        raise ValueError(problem)
    arguments = {"task_name": name, "rate_limit": re.sub(r"\s+", "", rate)}
    return _send(app, "rate_limit", name, "rate_limit", arguments, check_workers(workers), timeout)


def time_limit(app: Celery, task_name: str, *, soft: float | None, hard: float | None,
               workers: list[str] | None = None, timeout: float = 1.0) -> ControlResult:
    """Set `task_name`'s soft and hard time limits in seconds (None removes one) for its next executions."""
    name = check_name(task_name, "task name")
    soft = check_seconds(soft, "soft time limit")
    hard = check_seconds(hard, "hard time limit")
    if soft is not None and hard is not None and soft > hard:
        raise ValueError(f"The soft time limit ({soft:g} s) must not exceed the hard one ({hard:g} s).")
    return _send(app, "time_limit", name, "time_limit", {"task_name": name, "soft": soft, "hard": hard},
                 check_workers(workers), timeout)


# --- Worker controls ---------------------------------------------------------------------------------------

def pool_restart(app: Celery, worker: str, *, timeout: float = 1.0) -> ControlResult:
    """Restart the worker's pool processes (the worker needs `worker_pool_restarts=True`)."""
    return _to_worker(app, "pool_restart", worker, {"reload": False}, timeout)


def pool_grow(app: Celery, worker: str, n: int = 1, *, timeout: float = 1.0) -> ControlResult:
    """Add `n` pool processes (refused by the worker while autoscale is on)."""
    return _to_worker(app, "pool_grow", worker, {"n": check_count(n, "n")}, timeout)


def pool_shrink(app: Celery, worker: str, n: int = 1, *, timeout: float = 1.0) -> ControlResult:
    """Remove `n` pool processes (refused by the worker while autoscale is on)."""
    return _to_worker(app, "pool_shrink", worker, {"n": check_count(n, "n")}, timeout)


def autoscale(app: Celery, worker: str, max: int, min: int, *, timeout: float = 1.0) -> ControlResult:
    """Set the autoscaler's bounds (the worker needs `--autoscale`)."""
    high, low = check_count(max, "max"), check_count(min, "min", zero=True)
    if low > high:
        raise ValueError(f"min ({low}) must not exceed max ({high}).")
    return _to_worker(app, "autoscale", worker, {"max": high, "min": low}, timeout)


def add_consumer(app: Celery, worker: str, queue: str, *, timeout: float = 1.0) -> ControlResult:
    """Make the worker consume from `queue` too (until it restarts)."""
    return _to_worker(app, "add_consumer", worker, {"queue": check_name(queue, "queue name")}, timeout)


def cancel_consumer(app: Celery, worker: str, queue: str, *, timeout: float = 1.0) -> ControlResult:
    """Make the worker stop consuming from `queue` (until it restarts)."""
    return _to_worker(app, "cancel_consumer", worker, {"queue": check_name(queue, "queue name")}, timeout)


def shutdown(app: Celery, worker: str) -> ControlResult:
    """Warm shutdown: the worker finishes its running tasks and exits. It sends no reply."""
    hostname = check_name(worker, "worker name")
    try:
        broadcasts.broadcast(app, "shutdown", reply=False, destination=[hostname])
    except broadcasts.TooManyBroadcasts as exc:
        return ControlResult("shutdown", hostname, error=str(exc), throttled=True)
    except Exception as exc:  # noqa: BLE001 - any broker failure becomes the result's error
        return ControlResult("shutdown", hostname, error=_broker_error(exc))
    return ControlResult("shutdown", hostname)


# --- Retry -------------------------------------------------------------------------------------------------

def retry_problem(task: Any) -> str | None:
    """Why the stored `task` can't be re-sent as it ran, or None when it can."""
    if task is None:
        return "This monitor has no record of the task."
    if task.state != "FAILURE":
        return f"Only failed tasks can be retried; this one is {task.state}."
    if not task.name:
        return "The task's name is unknown (its sent or received event was never seen)."
    try:
        _parse_arguments(task.args, task.kwargs)
    except ValueError as exc:
        return str(exc)
    return None


def retry(app: Celery, task: Any, *, producer: Any = None) -> ControlResult:
    """Send the failed `task` again as a new task: same name, arguments and queue, same root, parent = it.

    Raises ValueError (with `retry_problem`'s reason) when its stored arguments can't be trusted. A bulk
    retry passes one `producer` for all its sends.
    """
    problem = retry_problem(task)
    if problem:
        raise ValueError(problem)
    args, kwargs = _parse_arguments(task.args, task.kwargs)
    options: dict[str, Any] = {}
    if task.queue:
        options["queue"] = task.queue
    if task.exchange:
        options["exchange"] = task.exchange
    if task.routing_key:
        options["routing_key"] = task.routing_key
    try:
        new = app.send_task(task.name, args=tuple(args), kwargs=kwargs, root_id=task.root_id or task.uuid,
                            parent_id=task.uuid, producer=producer, **options)
    except Exception as exc:  # noqa: BLE001 - any broker failure becomes the result's error
        return ControlResult("retry", task.uuid, error=_broker_error(exc))
    return ControlResult("retry", new.id)


def _parse_arguments(args_repr: str | None, kwargs_repr: str | None) -> tuple[list[Any], dict[str, Any]]:
    """The task's arguments from their stored reprs, with `ast.literal_eval` (never eval); ValueError if unsafe."""
    if args_repr is None and kwargs_repr is None:
        raise ValueError("The task's arguments are not stored (argument storage is off, or its sent and "
                         "received events were never seen), so it can't be sent again as it was.")
    args = _literal(args_repr or "()", "positional arguments")
    kwargs = _literal(kwargs_repr or "{}", "keyword arguments")
    if not isinstance(args, (list, tuple)):
        raise ValueError("The stored positional arguments are not a list or tuple.")
    if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
        raise ValueError("The stored keyword arguments are not a dict with string keys.")
    return list(args), kwargs


def _literal(text: str, what: str) -> Any:
    if is_truncated(text):
        raise ValueError(f"The stored {what} were shortened by this monitor's size cap (max_args_size), "
                         "so they are not the task's real arguments.")
    if MASK in text:
        raise ValueError(f"The stored {what} have values masked ({MASK}) by the privacy filter, "
                         "so they are not the task's real arguments.")
    if len(text) >= CELERY_REPR_MAX and "..." in text:
        raise ValueError(f"The {what} were shortened by Celery itself (its repr stops at "
                         f"{CELERY_REPR_MAX} characters), so they are not the task's real arguments.")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"The stored {what} are not plain literals (an object repr such as <… at 0x…>, or "
                         "a value Celery shortened), so they can't be rebuilt safely.") from None
    if _holds_ellipsis(value):
        raise ValueError(f"The stored {what} were shortened by Celery (nesting deeper than its repr shows "
                         "became [...]), so they are not the task's real arguments.")
    return value


def _holds_ellipsis(value: Any) -> bool:
    if value is Ellipsis:
        return True
    if isinstance(value, dict):
        return any(_holds_ellipsis(k) or _holds_ellipsis(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_holds_ellipsis(item) for item in value)
    return False


def registered_limits(entry: Any) -> tuple[str, dict[str, str]]:
    """One `inspect registered` line (`"proj.add [rate_limit=10/m time_limit=30]"`) as (name, {item: value})."""
    text = str(entry)
    name, _, rest = text.partition(" [")
    items: dict[str, str] = {}
    if rest.endswith("]"):
        for pair in rest[:-1].split():
            key, sep, value = pair.partition("=")
            if sep:
                items[key] = value
    return name.strip(), items


# --- Validation --------------------------------------------------------------------------------------------

def validate_rate(rate: str) -> str | None:
    """What is wrong with `rate` in Celery's syntax (`10`, `1.5`, `10/s`, `10/m`, `10/h`; 0 removes), or None."""
    if not isinstance(rate, str) or not rate.strip():
        return "A rate limit is a number of tasks, optionally per s, m or h: e.g. 10/m (0 removes the limit)."
    if _RATE_RE.match(rate) is None:
        return (f"{rate.strip()[:40]!r} is not a rate limit: write a number of tasks, optionally per second, "
                "minute or hour, e.g. 10, 10/s, 100/m or 2/h (0 removes the limit).")
    return None


def validate_signal(name: str) -> str:
    """The signal's canonical name (`"term"` → `"SIGTERM"`); ValueError for one this system doesn't have."""
    text = str(name).strip().upper()
    if text and not text.startswith("SIG"):
        text = "SIG" + text
    if text not in signals.Signals.__members__ or text.startswith("SIG_"):
        raise ValueError(f"{str(name)[:40]!r} is not a signal name (e.g. SIGTERM, SIGKILL, SIGINT).")
    return text


def _check_task_id(task_id: Any) -> str:
    if not isinstance(task_id, str) or not task_id.strip():
        raise ValueError("A task id must be a non-empty string.")
    if len(task_id) > MAX_NAME_LENGTH or re.search(r"[\x00-\x1f\x7f]", task_id):
        raise ValueError("A task id is at most 255 characters, without control characters.")
    return task_id


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"A {what} is required.")
    if len(value) > MAX_NAME_LENGTH or _BAD_NAME_RE.search(value):
        raise ValueError(f"A {what} is at most {MAX_NAME_LENGTH} characters, without spaces or control "
                         "characters.")
    return value


def check_workers(workers: list[str] | None) -> list[str] | None:
    if workers is None:
        return None
    checked = [check_name(worker, "worker name") for worker in workers]
    if not checked:
        raise ValueError("Name at least one worker, or none for all of them.")
    return checked


def check_count(value: Any, what: str, *, zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number.")
    if value < (0 if zero else 1) or value > 10_000:
        raise ValueError(f"{what} must be between {0 if zero else 1} and 10000.")
    return value


def check_seconds(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"The {what} must be a number of seconds.")
    seconds = float(value)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"The {what} must be a positive number of seconds (leave it empty for none).")
    return seconds


# --- Sending and replies -----------------------------------------------------------------------------------

def _to_worker(app: Celery, action: str, worker: str, arguments: dict[str, Any], timeout: float) -> ControlResult:
    hostname = check_name(worker, "worker name")
    return _send(app, action, hostname, action, arguments, [hostname], timeout)


def _send(app: Celery, action: str, target: str, command: str, arguments: dict[str, Any],
          destination: list[str] | None, timeout: float) -> ControlResult:
    """One broadcast with replies; `limit` returns early once every named destination answered."""
    try:
        raw = broadcasts.broadcast(app, command, reply=True, timeout=timeout, destination=destination,
                                   arguments=arguments, limit=len(destination) if destination else None)
    except broadcasts.TooManyBroadcasts as exc:
        return ControlResult(action, target, error=str(exc), throttled=True)
    except Exception as exc:  # noqa: BLE001 - any broker failure becomes the result's error
        log.warning("control %s failed: %s", action, exc)
        return ControlResult(action, target, error=_broker_error(exc))
    replies = parse_replies(raw)
    expected = destination if destination is not None else _online_workers()
    return ControlResult(action, target, replies, silent_workers(expected, replies))


def parse_replies(raw: Iterable[Any] | None) -> list[Reply]:
    """Celery's `[{hostname: {"ok": …} | {"error": …}}, …]` as one `Reply` per worker, sorted by name."""
    replies: dict[str, Reply] = {}
    for item in raw or ():
        if not isinstance(item, dict):
            continue
        for worker, answer in item.items():
            if str(worker).startswith("celerybeat@"):  # beat answers only ping; it is no worker
                continue
            replies[str(worker)] = _reply(str(worker), answer)
    return [replies[name] for name in sorted(replies)]


def _reply(worker: str, answer: Any) -> Reply:
    if isinstance(answer, dict) and "error" in answer:
        return Reply(worker, False, _short(answer["error"]))
    if isinstance(answer, dict) and "ok" in answer:
        return Reply(worker, True, _short(answer["ok"]))
    return Reply(worker, True, _short(answer if answer is not None else "done"))


def silent_workers(expected: Iterable[str], replies: list[Reply]) -> list[str]:
    """The expected workers that did not answer, sorted."""
    answered = {reply.worker for reply in replies}
    return sorted(set(expected) - answered)


def _online_workers() -> list[str]:
    """Workers the store believes online: those a broadcast to all should hear from."""
    try:
        from webui.store import worker_queries
        from webui.store.models import Worker

        query = Worker.select(Worker.hostname).where(Worker.online == True, worker_queries.visible())  # noqa: E712
        return [worker.hostname for worker in query]
    except Exception:  # noqa: BLE001 - no store bound (a script): nobody is known to be expected
        return []


def _merge(results: list[ControlResult]) -> ControlResult:
    """Chunked broadcasts as one result: a worker is ok if every chunk was, silent if it missed any."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    error = next((r.error for r in results if r.error), None)
    by_worker: dict[str, Reply] = {}
    for result in results:
        for reply in result.replies:
            seen = by_worker.get(reply.worker)
            if seen is None or (seen.ok and not reply.ok):
                by_worker[reply.worker] = reply
    silent = sorted({name for r in results for name in r.silent})
    replies = [by_worker[name] for name in sorted(by_worker) if name not in silent]
    return ControlResult(first.action, first.target, replies, silent, error, any(r.throttled for r in results))


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i: i + size] for i in range(0, len(items), size)]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MESSAGE_MAX else text[:MESSAGE_MAX] + "…"


def _broker_error(exc: BaseException) -> str:
    return f"broker unreachable: {exc}" if isinstance(exc, (OSError, ConnectionError)) or _is_kombu(exc) \
        else f"broadcast failed: {type(exc).__name__}: {exc}"


def _is_kombu(exc: BaseException) -> bool:
    from kombu.exceptions import OperationalError

    return isinstance(exc, OperationalError)
