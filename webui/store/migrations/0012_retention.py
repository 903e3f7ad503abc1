"""Schema v12: what retention needs (webui.store.retention), frozen copy.

- `task (state, updated_at)`: a finished task is pruned by its state and by when the monitor last heard of it
  (`updated_at`, the collector's clock), so every batch is the oldest range of one index for one state: it costs
  the same whatever the table holds and never reads the tasks that are kept. The other pruned tables already
  have what they need: `task_event` its key (task_id, seq) and `task_event_received` (0004), `task_minute` its
  key (minute, name), `audit_log (at)` and `auth_failure (at)` (0008); worker transitions, gaps and alert rows
  are walked by id, which grows with time.
- `task_total`: what pruned task rows had added to /metrics' totals (tasks sent, the queue-wait histogram,
  failures by exception class), per task name, so those counters never fall when their rows go. (Pruned
  rollup minutes are folded into each name's row at minute 0 of `task_minute` instead.)
"""
from peewee import CharField, CompositeKey, DoubleField, Model

INDEXES = ("CREATE INDEX IF NOT EXISTS task_state_updated ON task (state, updated_at)",)


def up(migrator, db):
    class TaskTotal(Model):
        name = CharField(max_length=255)  # "" when the task's name was not known
        metric = CharField(max_length=16)  # sent, wait, wait_sum, failed
        label = CharField(max_length=160)  # wait: the bucket's upper bound ("+Inf"); failed: the exception class
        value = DoubleField()

        class Meta:
            database = db
            legacy_table_names = False
            primary_key = CompositeKey("name", "metric", "label")

    for statement in INDEXES:
        db.execute_sql(statement)
    db.create_tables([TaskTotal])
