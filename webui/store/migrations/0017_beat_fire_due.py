"""Schema v17: `beat_fire.due` and `beat_fire.failed`, from the companion's stamps in beat (webui.agent.beat).

`due` is the time the fire's slot was due, as beat stamped it: lateness and duplicate slots are measured against
it exactly instead of being inferred from the fire before. `failed` is the exception of a fire whose publish
raised (a `beat-publish-failed` record): such a row is beat's attempt at the slot, not a fire of it.
"""
from peewee import DoubleField, TextField


def up(migrator, db):
    migrator.migrate(migrator.add_column("beat_fire", "due", DoubleField(null=True)),
                     migrator.add_column("beat_fire", "failed", TextField(null=True)))
