"""Schema v1: tasks, their event logs, workers, collector gaps and the collector's status (frozen copy)."""
from peewee import (
    BooleanField,
    CharField,
    CompositeKey,
    DoubleField,
    IntegerField,
    Model,
    TextField,
)


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Task(Base):
        id = IntegerField(primary_key=True)
        uuid = CharField(max_length=255, unique=True)
        name = CharField(max_length=255, null=True)
        state = CharField(max_length=16, index=True)
        args = TextField(null=True)
        kwargs = TextField(null=True)
        result = TextField(null=True)
        exception = TextField(null=True)
        traceback = TextField(null=True)
        worker = CharField(max_length=255, null=True)
        queue = CharField(max_length=255, null=True)
        exchange = CharField(max_length=255, null=True)
        routing_key = CharField(max_length=255, null=True)
        retries = IntegerField(default=0)
        eta = CharField(max_length=64, null=True)
        expires = CharField(max_length=64, null=True)
        parent_id = CharField(max_length=255, null=True)
        root_id = CharField(max_length=255, null=True)
        sent_at = DoubleField(null=True)
        received_at = DoubleField(null=True)
        started_at = DoubleField(null=True)
        succeeded_at = DoubleField(null=True)
        failed_at = DoubleField(null=True)
        retried_at = DoubleField(null=True)
        revoked_at = DoubleField(null=True)
        rejected_at = DoubleField(null=True)
        cancelled_at = DoubleField(null=True)
        runtime = DoubleField(null=True)
        attempt = IntegerField(default=0)
        delivery = IntegerField(default=0)
        rank = IntegerField(default=-1)
        started_attempt = IntegerField(default=0)
        started_delivery = IntegerField(default=0)
        starts = IntegerField(default=0)
        executions = IntegerField(default=0)
        event_count = IntegerField(default=0)
        detail = TextField(null=True)
        updated_at = DoubleField()

    class TaskEvent(Base):
        task_id = IntegerField()
        seq = IntegerField()
        type = CharField(max_length=64)
        timestamp = DoubleField(null=True)
        received = DoubleField()
        hostname = CharField(max_length=255, null=True)
        pid = IntegerField(null=True)
        clock = IntegerField(null=True)
        source = CharField(max_length=16, null=True)
        data = TextField(null=True)

        class Meta:
            # On SQLite a rowid table plus this key's unique index: rows append in arrival order and pages
            # stay full. Clustering by (task_id, seq) left 40% of pages empty, because the events of tasks
            # in flight interleave and split pages in the middle of the tree.
            primary_key = CompositeKey("task_id", "seq")

    class Worker(Base):
        hostname = CharField(max_length=255, unique=True)
        pid = IntegerField(null=True)
        sw_ident = CharField(max_length=255, null=True)
        sw_ver = CharField(max_length=255, null=True)
        sw_sys = CharField(max_length=255, null=True)
        freq = DoubleField(null=True)
        loadavg = CharField(max_length=255, null=True)
        processed = IntegerField(null=True)
        active = IntegerField(null=True)
        online = BooleanField(default=False)
        status_changed_at = DoubleField(null=True)
        offline_reason = CharField(max_length=64, null=True)
        first_seen = DoubleField()
        last_seen = DoubleField()
        last_heartbeat = DoubleField(null=True)
        heartbeat_timestamp = DoubleField(null=True)
        utcoffset = DoubleField(null=True)
        last_task_event_at = DoubleField(null=True)

    class CollectorGap(Base):
        started_at = DoubleField()
        ended_at = DoubleField(null=True)
        kind = CharField(max_length=32)
        reason = TextField()
        events_lost = IntegerField(null=True)

    class CollectorStatus(Base):
        leader = CharField(max_length=255)
        broker = CharField(max_length=1024, null=True)
        connected = BooleanField(default=False)
        started_at = DoubleField()
        connected_since = DoubleField(null=True)
        heartbeat_at = DoubleField()
        last_event_at = DoubleField(null=True)
        last_task_event_at = DoubleField(null=True)
        events_total = IntegerField(default=0)
        events_malformed = IntegerField(default=0)
        events_dropped = IntegerField(default=0)
        last_error = TextField(null=True)
        warning = TextField(null=True)

    db.create_tables([Task, TaskEvent, Worker, CollectorGap, CollectorStatus])
