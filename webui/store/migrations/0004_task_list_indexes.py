"""Schema v4: the indexes the tasks list, the worker pages, the events stream and the workflow links read.

Every list is ordered by `id` (the order in which this monitor first saw each task), so each filter column is
indexed together with `id`: a filtered page is a range of one index, read newest first, never a sort of the
whole table. `(state, id)` replaces the single-column state index. Partial indexes keep the rare columns
(parents, failures) from costing anything on the other rows.
"""

INDEXES = (
    "CREATE INDEX IF NOT EXISTS task_state_id ON task (state, id)",
    "CREATE INDEX IF NOT EXISTS task_name_id ON task (name, id)",
    "CREATE INDEX IF NOT EXISTS task_worker_id ON task (worker, id)",
    "CREATE INDEX IF NOT EXISTS task_queue_id ON task (queue, id)",
    "CREATE INDEX IF NOT EXISTS task_received_at ON task (received_at)",
    "CREATE INDEX IF NOT EXISTS task_runtime ON task (runtime) WHERE runtime IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS task_parent_id ON task (parent_id) WHERE parent_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS task_failed_at ON task (failed_at) WHERE failed_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS task_event_received ON task_event (received)",
    "DROP INDEX IF EXISTS task_state",
)


def up(migrator, db):
    for statement in INDEXES:
        db.execute_sql(statement)
