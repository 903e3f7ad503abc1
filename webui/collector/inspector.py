"""Ask the workers what they are (stats, queues, registered tasks, configuration) and what they hold.

The leading collector runs `inspect_loop` in a helper thread: once right after each (re)connection, then every
`inspect_interval` seconds. The eight broadcasts run at once and each returns as soon as every worker the store
knows online has replied (else after `inspect_timeout`). The replies go to the writer, the only database
writer, which merges them into `worker_inspection`. Pages read that table: a page never waits on a broadcast.

Replies are data from the broker, so they are treated like events: task arguments in active, reserved and
scheduled pass through the same privacy filter as task events, and the configuration and stats go through its
masking rules too (Celery censors them already, but older workers or custom settings may not be).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery
from peewee import Database

from webui import broadcasts
from webui.collector.reconcile import celery_repr, online_workers
from webui.privacy import MASK, Redactor
from webui.store.database import discard_connection

log = logging.getLogger(__name__)

COMMANDS = ("stats", "active_queues", "registered", "active", "reserved", "scheduled", "revoked", "conf")
_TASK_LISTS = ("active", "reserved")
_MASKED_WHOLE = ("stats", "conf")
MAX_HOSTNAME = 255  # the worker table's limit
# What `registered` tells of each task: Celery's default three, plus the time limits the controls page shows
# (set by the task's decorator or a time_limit broadcast; None values are left out by the worker).
TASK_INFO_ITEMS = ("exchange", "routing_key", "rate_limit", "time_limit", "soft_time_limit")


# -- pure: replies by command → data by worker ------------------------------------------------------------

def by_worker(replies: Mapping[str, Mapping[str, Any] | None], redactor: Redactor) -> dict[str, dict[str, Any]]:
    """`{command: {hostname: reply}}` as inspect returns it → `{hostname: {command: reply}}`, cleaned.

    Beat's `celerybeat@host` is not a worker (it answers ping only, but never count it); hostnames that
    are not strings or longer than the store allows are dropped.
    """
    workers: dict[str, dict[str, Any]] = {}
    for command, answers in replies.items():
        for hostname, reply in (answers or {}).items():
            if not isinstance(hostname, str) or not hostname or len(hostname) > MAX_HOSTNAME:
                continue
            if hostname.startswith("celerybeat@"):
                continue
            workers.setdefault(hostname, {})[command] = clean_reply(command, reply, redactor)
    return workers


def clean_reply(command: str, reply: Any, redactor: Redactor) -> Any:
    """Mask what a reply may hide: task arguments as in task events, secrets in stats and configuration."""
    if is_error(reply):
        return reply
    if command in _TASK_LISTS and isinstance(reply, list):
        return [clean_request(r, redactor) for r in reply]
    if command == "scheduled" and isinstance(reply, list):
        return [{**e, "request": clean_request(e.get("request"), redactor)} if isinstance(e, dict) else e
                for e in reply]
    if command in _MASKED_WHOLE:
        return _mask_json(reply, redactor)
    return reply


def clean_request(request: Any, redactor: Redactor) -> Any:
    """A task request from active/reserved/scheduled with args and kwargs masked and capped like task events."""
    if not isinstance(request, dict):
        return request
    payload = {"args": celery_repr(request.get("args"), positional=True),
               "kwargs": celery_repr(request.get("kwargs"))}
    return {**request, **redactor.clean_event(payload, copy=False)}


def _mask_json(value: Any, redactor: Redactor) -> Any:
    """Apply the masking rules to a JSON value, keeping its structure: the value of a secret-looking key is
    masked whole, and every string goes through the text rules (URL passwords, bearer tokens, card numbers).

    Never through the JSON text as a whole: a rule matching there (a long number that passes the card check, a
    key's value without quotes) would leave text that is no longer JSON, and the reply would lose its shape.
    """
    if isinstance(value, dict):
        return {key: MASK if _secret_key(key, redactor) and value[key] not in (None, "", False)
                else _mask_json(value[key], redactor) for key in value}
    if isinstance(value, list | tuple):
        return [_mask_json(item, redactor) for item in value]
    if isinstance(value, str):
        return redactor.mask(value)
    return value


def _secret_key(key: Any, redactor: Redactor) -> bool:
    low = str(key).lower()
    return any(word in low for word in redactor.mask_keys)


def is_error(reply: Any) -> bool:
    """A command that raised on the worker answers `{'error': repr(exc)}`."""
    return isinstance(reply, dict) and set(reply) == {"error"}


def merge(previous: Mapping[str, Any] | None, fresh: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A worker's stored replies updated with the commands it answered now; and the errors it answered.

    A command the worker did not answer (or answered with an error) keeps its previous reply.
    """
    data = dict(previous or {})
    errors = []
    for command, reply in fresh.items():
        if is_error(reply):
            errors.append(f"{command}: {reply['error']}")
        else:
            data[command] = reply
    return data, "; ".join(errors) or None


# -- I/O: the broadcasts and the loop ---------------------------------------------------------------------

def broadcast(app: Celery, timeout: float, expected: int | None) -> dict[str, dict[str, Any] | None]:
    """Every command at once; each returns after `expected` replies, or after `timeout`."""
    with ThreadPoolExecutor(max_workers=len(COMMANDS), thread_name_prefix="webui-inspect") as pool:
        futures = {command: pool.submit(_call, app, command, timeout, expected or None) for command in COMMANDS}
    return {command: future.result() for command, future in futures.items()}


def _call(app: Celery, command: str, timeout: float, limit: int | None) -> dict[str, Any] | None:
    # `active(safe=True)`: argsrepr strings, never unpickled values.
    arguments: dict[str, Any] = {"safe": True} if command == "active" else {}
    args = TASK_INFO_ITEMS if command == "registered" else ()
    try:
        return broadcasts.inspect(app, command, *args, timeout=timeout, limit=limit, **arguments)
    except Exception as exc:  # noqa: BLE001 - one failed command must not lose the others' replies
        log.debug("inspect %s failed: %s", command, exc)
        return None


def inspect_once(app: Celery, writer: Any, redactor: Redactor, *, timeout: float, expected: int | None) -> int:
    """Broadcast, and hand what came back to the writer; returns how many workers answered."""
    at = time.time()
    results = by_worker(broadcast(app, timeout, expected), redactor)
    if results:
        writer.put_inspection(results, at)
    return len(results)


def inspect_loop(app: Celery, db: Database, writer: Any, redactor: Redactor, *, interval: float, timeout: float,
                 stop: threading.Event, connected_since: Callable[[], float | None]) -> None:
    """Inspect right after each (re)connection, then every `interval` seconds, while this term lasts."""
    inspected_connection: float | None = None
    next_at = 0.0
    while not stop.is_set() and writer.is_alive():
        since = connected_since()
        if since is not None and (since != inspected_connection or time.time() >= next_at):
            inspected_connection = since
            next_at = time.time() + interval
            try:
                answered = inspect_once(app, writer, redactor, timeout=timeout, expected=online_workers(db))
                log.debug("inspected %d workers", answered)
            except Exception as exc:  # noqa: BLE001 - the pages show the last replies and their age
                log.warning("inspecting the workers failed: %s", exc)
                discard_connection(db)
        stop.wait(0.5)
