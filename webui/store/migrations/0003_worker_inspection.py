"""Schema v3: each worker's latest inspect replies (stats, queues, registered tasks, …) (frozen copy)."""
from peewee import CharField, DoubleField, Model, TextField


def up(migrator, db):
    class WorkerInspection(Model):
        hostname = CharField(max_length=255, unique=True)
        at = DoubleField()
        data = TextField(null=True)
        error = TextField(null=True)

        class Meta:
            database = db
            legacy_table_names = False

    db.create_tables([WorkerInspection])
