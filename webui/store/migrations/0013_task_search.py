"""Schema v13: the search index over a task's args, kwargs, result and exception (webui.store.task_search).

- `task_search_mark` (one row): `indexed_to`, the indexer's high-water mark by task id. Tasks above it have not
  been indexed yet; at or below it, every task is in the index with its current text unless it is queued.
- `task_search_queue`: tasks at or below the mark to reindex, written by the collector's writer in the batch
  that changed their text; `old_body` is the text the index holds for the task (SQLite's contentless index can
  only forget a text it is given again).
- SQLite: `task_fts`, a contentless FTS5 table with the trigram tokenizer and no positions (`detail=none`: no
  copy of the text; which tasks hold each trigram, not where), keyed by task id. Without FTS5 or the trigram
  tokenizer (SQLite < 3.34) it is left out, and searching walks the table as before.
- PostgreSQL: the pg_trgm extension and `task_search (id, body)` with a GIN trigram index. Creating the extension
  needs a privilege the database user may lack: then the table is left out, the reason logged, and the
  collector tries again at each start (webui.store.task_search.prepare). Searching walks the table meanwhile.

The mark starts at 0, so the tasks already stored are indexed by the collector from the oldest on, in small
batches beside the live stream; until then they are found by walking the table, as before this migration.
"""
import logging

from peewee import SqliteDatabase

log = logging.getLogger(__name__)

COMMON = (
    "CREATE TABLE IF NOT EXISTS task_search_mark (id INTEGER PRIMARY KEY, indexed_to INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS task_search_queue (task_id INTEGER PRIMARY KEY, old_body TEXT)",
    "INSERT INTO task_search_mark (id, indexed_to) VALUES (1, 0)",
)
# detail=none: which tasks hold a trigram, not where: a third of the size and of the indexing time of
# detail=full. Searches AND trigrams and check the rows, so they need no phrases.
SQLITE = ("CREATE VIRTUAL TABLE IF NOT EXISTS task_fts USING fts5("
          "body, content='', columnsize=0, detail=none, tokenize='trigram')")
POSTGRESQL = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE TABLE IF NOT EXISTS task_search (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS task_search_body ON task_search USING gin (body gin_trgm_ops)",
)


def up(migrator, db):
    for statement in COMMON:
        db.execute_sql(statement)
    sqlite = isinstance(db, SqliteDatabase)
    try:
        with db.atomic():  # a savepoint: a refusal must not abort the migration's transaction
            for statement in ((SQLITE,) if sqlite else POSTGRESQL):
                db.execute_sql(statement)
    except Exception as exc:  # noqa: BLE001 - any refusal leaves search on the table walk
        log.warning("search index not created (%s): searching tasks walks the table instead", exc)
