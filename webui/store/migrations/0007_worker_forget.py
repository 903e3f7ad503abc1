"""Schema: `worker.forgotten_at`, so an offline worker can be forgotten (hidden) until it is seen again.

The web process sets it to the worker's `last_seen` (the collector's clock); the collector's writer never
writes it. A worker is hidden while `last_seen <= forgotten_at`: the first new event from it moves `last_seen`
past it, and the worker is back, without the collector having to be told anything.
"""
from peewee import DoubleField


def up(migrator, db):
    migrator.migrate(migrator.add_column("worker", "forgotten_at", DoubleField(null=True)))
