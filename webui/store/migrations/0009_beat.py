"""Schema v9: beat schedule entries as the sources last showed them, the fires matched to them, and the watcher's
own progress (frozen copy of webui.store.models.BeatEntry, BeatFire and BeatWatch)."""
from peewee import BooleanField, CharField, DoubleField, IntegerField, Model, TextField


def up(migrator, db):
    class BeatEntry(Model):
        source = CharField(max_length=16)  # app, file, redbeat, django
        name = CharField(max_length=255)
        task = CharField(max_length=255)
        schedule = TextField()  # JSON spec (webui.beat.schedule_spec)
        args = TextField(null=True)  # JSON
        kwargs = TextField(null=True)  # JSON
        queue = CharField(max_length=255, null=True)
        options = TextField(null=True)  # JSON
        enabled = BooleanField(default=True)
        description = TextField(null=True)
        last_run_at = DoubleField(null=True)  # the scheduler's own record
        total_run_count = IntegerField(null=True)
        next_due_at = DoubleField(null=True)  # the scheduler's own plan (RedBeat)
        first_seen = DoubleField()
        seen_at = DoubleField()
        changed_at = DoubleField()  # when its schedule, task or arguments last changed
        removed_at = DoubleField(null=True)  # no longer in its source

        class Meta:
            database = db
            legacy_table_names = False
            indexes = ((("source", "name"), True),)

    class BeatFire(Model):
        entry_id = IntegerField()
        task_uuid = CharField(max_length=255)
        at = DoubleField()  # sent, else received, by the collector's record of the task
        sender = CharField(max_length=255, null=True)  # hostname:pid of the task-sent event

        class Meta:
            database = db
            legacy_table_names = False
            indexes = ((("entry_id", "at"), False), (("task_uuid", "entry_id"), True))

    class BeatWatch(Model):
        id = IntegerField(primary_key=True)  # always 1
        task_cursor = IntegerField(default=0)  # the highest task id already matched
        checked_at = DoubleField(null=True)  # the end of the watcher's last full pass
        sources = TextField(null=True)  # JSON {source: {"entries": n, "error": text | None, "read_at": t}}
        ping_at = DoubleField(null=True)  # the last ping broadcast
        pong_at = DoubleField(null=True)  # the last time a beat node answered
        pong_nodes = TextField(null=True)  # JSON list of the node names that answered last

        class Meta:
            database = db
            legacy_table_names = False

    db.create_tables([BeatEntry, BeatFire, BeatWatch])
