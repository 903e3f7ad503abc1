"""Schema: `queue_sample`, each queue's depth as the collector's queue sampler saw it (frozen copy).

One row per queue per sample (every `queue_sample_interval` seconds), kept 7 days; pages read the last hour
of one queue, or every queue, through the `(queue, at)` index.
"""
from peewee import CharField, DoubleField, IntegerField, Model, TextField


def up(migrator, db):
    class QueueSample(Model):
        queue = CharField(max_length=255)
        at = DoubleField()
        depth = IntegerField(null=True)
        ready = IntegerField(null=True)
        unacked = IntegerField(null=True)
        consumers = IntegerField(null=True)
        oldest_age = DoubleField(null=True)
        detail = TextField(null=True)

        class Meta:
            database = db
            legacy_table_names = False
            indexes = ((("queue", "at"), False),)

    db.create_tables([QueueSample])
