"""What the writer queues for the search index, and how a search text becomes an index query."""
from __future__ import annotations

import time

from webui.collector.merge import TaskState
from webui.store import task_search
from webui.store.database import open_database
from webui.store.task_search import Indexer, body, stale


def state(task_id: int, state: str, result: str | None = None, args: str = "(1,)") -> TaskState:
    return TaskState(uuid=f"u{task_id}", id=task_id, state=state, args=args, kwargs="{}", result=result)


def snapshot(*states: TaskState) -> task_search.Snapshot:
    return {s.id: (s.args, s.kwargs, s.result, s.exception) for s in states}  # type: ignore[misc]


def test_it_queues_a_task_whose_text_changed_with_the_text_the_index_holds():
    before = snapshot(state(1, "STARTED"))
    assert stale(before, [state(1, "SUCCESS", "42")], old_bodies=True) == [(1, body("(1,)", "{}", None, None))]
    assert stale(before, [state(1, "SUCCESS", "42")], old_bodies=False) == [(1, None)]


def test_it_leaves_tasks_whose_text_did_not_change_alone_whatever_their_state():
    before = snapshot(state(1, "RECEIVED"), state(2, "FAILURE", "42"))
    assert stale(before, [state(1, "STARTED"), state(2, "SUCCESS", "42")], old_bodies=True) == []


def test_it_never_queues_a_task_above_the_mark():
    assert stale({}, [state(9, "SUCCESS", "42")], old_bodies=True) == []


def test_the_sweep_stays_behind_the_tasks_first_seen_in_the_last_seconds(tmp_path):
    indexer = Indexer(open_database(f"sqlite:///{tmp_path}/s.sqlite3"), lag=60.0)
    indexer.enabled = True
    indexer.queue({}, [], new=[state(1, "RECEIVED"), state(2, "RECEIVED")])
    assert indexer._sweep_limit() == 0 and not indexer.caught_up
    indexer._fresh[0] = (1, time.monotonic() - 61)
    indexer.queue({}, [], new=[state(3, "RECEIVED")])
    assert indexer._sweep_limit() == 2
    indexer._fresh[0] = (3, time.monotonic() - 61)
    assert indexer._sweep_limit() is None


def test_the_text_is_the_four_columns_on_lines_of_their_own():
    assert body("(1,)", None, "'ok'", "ValueError()") == "(1,)\n\n'ok'\nValueError()"


def test_every_character_of_a_search_is_literal_in_the_fts_query():
    assert task_search._phrase('say "NEAR(a b)" AND *') == '"say ""NEAR(a b)"" AND *"'


def test_short_texts_and_on_postgresql_texts_without_a_word_of_three_are_left_to_the_walk(tmp_path):
    sqlite = open_database(f"sqlite:///{tmp_path}/s.sqlite3")
    postgresql = open_database("postgresql://nobody@127.0.0.1:1/none")  # never connected
    assert not task_search.usable(sqlite, "ab") and task_search.usable(sqlite, "%_'")
    assert task_search.usable(postgresql, "a abc") and not task_search.usable(postgresql, "%_' a.b-c")
