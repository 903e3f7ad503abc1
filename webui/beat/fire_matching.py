"""Which stored tasks are fires of which beat entry: same task name, same arguments as the store keeps them.

Celery puts no entry name in any event (celery-facts §5.1): a fire is recognised by the task name and the
arguments beat sends. The store keeps `argsrepr`/`kwargsrepr` as Celery wrote them (saferepr, 1024 characters),
then masked and capped by our privacy settings, so the entry's arguments go through the same steps before they
are compared. With `store_args` off there is nothing to compare: the task name alone decides, and when several
entries share a task name, such a task is matched to none (guessing would invent fires).

Where the companion runs in beat (webui.agent.beat), each fire's task names its entry (`detail["beat"]`): it is
matched by that name exactly, whatever its arguments, and once an entry has a stamped fire, tasks without a
stamp (the same task sent by hand with the same arguments) are no longer taken for its fires.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from celery.utils.saferepr import saferepr

from webui import fastjson
from webui.privacy import Redactor

REPR_MAXSIZE = 1024  # Celery's argsrepr_maxsize and kwargsrepr_maxsize


EntryKey = tuple[str, str]  # (source, name)


@dataclass(frozen=True)
class WatchedEntry:
    key: EntryKey
    task: str
    args: list
    kwargs: dict


class FireMatcher:
    def __init__(self, entries: Iterable[WatchedEntry], redactor: Redactor,
                 stamped: set[EntryKey] | None = None) -> None:
        self._by_task: dict[str, list[tuple[EntryKey, set[str], str | None]]] = defaultdict(list)
        self._by_name: dict[tuple[str, str], list[EntryKey]] = defaultdict(list)  # (entry name, task) -> keys
        self.stamped = stamped if stamped is not None else set()  # entries with a stamped fire seen
        for entry in entries:
            self._by_name[(entry.key[1], entry.task)].append(entry.key)
            self._by_task[entry.task].append(
                (entry.key, _stored_args(entry.args, redactor), _stored_kwargs(entry.kwargs, redactor)))

    @property
    def task_names(self) -> set[str]:
        return set(self._by_task)

    def entries_for(self, name: str | None, args: str | None, kwargs: str | None,
                    stamp: str | None = None) -> list[EntryKey]:
        """The entries a task with this name and stored arguments (and beat's stamp naming the entry, if any)
        is a fire of (usually one, or none)."""
        if stamp is not None:
            keys = self._by_name.get((stamp, name or ""), [])
            self.stamped.update(keys)
            return list(keys)
        candidates = [c for c in self._by_task.get(name or "", ()) if c[0] not in self.stamped]
        if not candidates:
            return []
        if args is None and kwargs is None:
            return [candidates[0][0]] if len(candidates) == 1 else []
        return [key for key, arg_forms, kwarg_form in candidates
                if args in arg_forms and (kwargs == kwarg_form or kwargs is None)]


def stamp_of(detail: str | None) -> tuple[str | None, float | None]:
    """The entry name and due time the companion stamped a fire with (webui.agent.beat), from its task row's
    `detail` JSON, if it did."""
    if not detail or '"beat"' not in detail:
        return None, None
    beat = fastjson.loads_as(detail, dict).get("beat")
    if not isinstance(beat, dict) or not isinstance(beat.get("entry"), str):
        return None, None
    due = beat.get("due")
    return beat["entry"], float(due) if isinstance(due, int | float) and not isinstance(due, bool) else None


def _stored_args(args: list, redactor: Redactor) -> set[str]:
    # Beat passes the entry's args as they are: a list from JSON sources, often a tuple from app config.
    values = tuple(args or ())
    forms = {saferepr(values, REPR_MAXSIZE), saferepr(list(values), REPR_MAXSIZE)}
    return {redactor.clean_event({"args": form})["args"] for form in forms}


def _stored_kwargs(kwargs: dict, redactor: Redactor) -> str | None:
    return redactor.clean_event({"kwargs": saferepr(dict(kwargs or {}), REPR_MAXSIZE)})["kwargs"]
