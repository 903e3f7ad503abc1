"""Schema v5: `task_minute`, per-minute task event counts and runtime histograms by task name (frozen copy).

Written by the collector's writer in each batch's transaction (webui.collector.rollups); the overview reads it
instead of the task table. One row per (minute, name): a day of 100 task names is 144,000 small rows.
"""
from peewee import CharField, CompositeKey, DoubleField, IntegerField, Model

COUNT_COLUMNS = ("received", "started", "succeeded", "failed", "retried", "revoked", "rejected")
BUCKETS = 17  # runtime histogram buckets rt_b00..rt_b16 (bounds in webui.collector.rollups.RUNTIME_BOUNDS)


def up(migrator, db):
    fields = {
        "minute": IntegerField(),  # epoch seconds of the minute's start
        "name": CharField(max_length=255),  # "" when the task's name was not known yet
        **{column: IntegerField(default=0) for column in COUNT_COLUMNS},
        "runtime_sum": DoubleField(default=0),
        "runtime_count": IntegerField(default=0),
        **{f"rt_b{i:02d}": IntegerField(default=0) for i in range(BUCKETS)},
    }

    class Meta:
        database = db
        table_name = "task_minute"
        primary_key = CompositeKey("minute", "name")

    TaskMinute = type("TaskMinute", (Model,), {**fields, "Meta": Meta, "__module__": __name__})
    db.create_tables([TaskMinute])
