"""Schema v2: the history of each worker's online/offline transitions (frozen copy)."""
from peewee import BooleanField, CharField, DoubleField, IntegerField, Model


def up(migrator, db):
    class WorkerEvent(Model):
        worker_id = IntegerField(index=True)
        online = BooleanField()
        at = DoubleField()
        reason = CharField(max_length=64)

        class Meta:
            database = db
            legacy_table_names = False

    db.create_tables([WorkerEvent])
