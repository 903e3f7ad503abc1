"""Schema v11: a partial index on the tasks that ran more often than their retries explain.

The duplicate-execution detector (webui.detect.tasks_duplicate) reads the recently updated ones every detect
pass. They are rare (a redelivery after a visibility timeout or a lost worker), so the index costs nothing on
the other rows, and the detector never scans the task table. The query must repeat the predicate word for word
for SQLite and PostgreSQL to use it. (The LOST state needs no schema: its time, worker and reason are in the
task's `detail` JSON and its event log, and the `(state, id)` index finds LOST tasks.)
"""

REPEATED = "executions > retries + 1"


def up(migrator, db):
    db.execute_sql(f"CREATE INDEX IF NOT EXISTS task_repeated ON task (updated_at) WHERE {REPEATED}")
