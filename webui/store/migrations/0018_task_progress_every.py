"""Schema v18: `task.progress_every`, the running delivery's promise of a progress report every N seconds.

Set from the companion's `expect_progress` / `webui_progress_every` (webui.agent), cleared when a new attempt or
delivery starts or the task withdraws it. A column rather than a key of `detail`, so the stalled-task detector
finds the few STARTED tasks that promised in SQL (`state = 'STARTED' AND progress_every IS NOT NULL`, through the
`(state, id)` index) and leaves them out of the guessed threshold, without parsing every running task's JSON.
The time the promise was made is in `detail` (`promised_at`), the last report in `detail.progress.at`.
"""
from peewee import DoubleField


def up(migrator, db):
    migrator.migrate(migrator.add_column("task", "progress_every", DoubleField(null=True)))
