"""Schema v16: `task_log`, what a task logged while it ran, captured by the companion (frozen copy).

One row per captured line (webui.agent.logs), by attempt: `attempt` is the record's `retries` + 1, as the task
page numbers attempts. `seq` is the line's number within its attempt in its process, so a record the stream
delivers again (a collector killed before acknowledging) hits the unique index and is stored once. A row with
`omitted` set is the cap's own note: how many more lines and bytes the companion did not keep. Pruned with the
task's events (webui.store.retention).
"""
from peewee import AutoField, CharField, DoubleField, IntegerField, Model, TextField


def up(migrator, db):
    class TaskLog(Model):
        id = AutoField()
        task_id = IntegerField()
        attempt = IntegerField()
        pid = IntegerField()
        seq = IntegerField()
        hostname = CharField(max_length=255, null=True)
        at = DoubleField(null=True)
        level = CharField(max_length=16, null=True)
        logger = CharField(max_length=255, null=True)
        message = TextField(null=True)
        omitted = IntegerField(null=True)  # the cap's note: lines not kept
        omitted_bytes = IntegerField(null=True)
        received = DoubleField()

        class Meta:
            database = db
            legacy_table_names = False
            indexes = ((("task_id", "attempt", "pid", "seq"), True),)

    db.create_tables([TaskLog])
