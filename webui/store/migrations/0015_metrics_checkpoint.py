"""Schema v15: `metrics_checkpoint`, how far /metrics' settled totals in `task_total` reach (frozen copy).

One row (id 1), written by the leading collector (webui.store.metrics_checkpoint): `task_below` (task ids below
it are counted), `failed_below` (failures stamped before it), `minute_below` (rollup minutes before it) and
`advanced_at`. Until the leader first advances it there is no row, and `task_total` holds only what retention
had folded in, as before this version.

`task_total`'s queue-wait sum moves from seconds (`wait_sum`) to whole microseconds (`wait_us`): the checkpoint
adds to it every minute, and a sum of seconds drifts by rounding where one of integers stays exact.
"""
from peewee import BigIntegerField, DoubleField, IntegerField, Model


def up(migrator, db):
    class MetricsCheckpoint(Model):
        id = IntegerField(primary_key=True)
        task_below = BigIntegerField()
        failed_below = DoubleField()
        minute_below = BigIntegerField()
        advanced_at = DoubleField()

        class Meta:
            database = db
            legacy_table_names = False

    db.create_tables([MetricsCheckpoint])
    db.execute_sql("UPDATE task_total SET metric = 'wait_us', value = ROUND(value * 1000000) "
                   "WHERE metric = 'wait_sum'")
