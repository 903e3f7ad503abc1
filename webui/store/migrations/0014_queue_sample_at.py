"""Schema v14: `queue_sample (at)`, so "every queue sampled in the last hour" is one range of an index.

The queues page, the overview's queue panel and /metrics read the samples of every queue within a window.
`(queue, at)` (0006) serves one queue's window, but for all of them PostgreSQL read the whole table (7 days of
samples: 242,000 rows for 4 queues sampled every 10 s, 27 ms; ten times that with 40 queues) and sorted it.
"""

INDEXES = ("CREATE INDEX IF NOT EXISTS queue_sample_at ON queue_sample (at)",)


def up(migrator, db):
    for statement in INDEXES:
        db.execute_sql(statement)
