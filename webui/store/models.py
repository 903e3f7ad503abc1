"""Peewee models of the latest schema, bound to `database_proxy`.

The collector's writer does not use these on its hot path (it writes batches with prepared statements); pages
and the API read through them. Migrations keep their own frozen copies, so editing a model here never changes
what an old migration creates.
"""
from __future__ import annotations

from typing import Any

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    DoubleField,
    IntegerField,
    Model,
    TextField,
)

from webui import fastjson
from webui.collector.rollups import BUCKET_COLUMNS as ROLLUP_BUCKET_COLUMNS
from webui.store.database import database_proxy


class BaseModel(Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class Task(BaseModel):
    """One row per task id; times are the sender's epoch seconds, `updated_at` the collector's."""

    id = IntegerField(primary_key=True)
    uuid = CharField(max_length=255, unique=True)
    name = CharField(max_length=255, null=True)
    state = CharField(max_length=16)  # indexed with id, like name, worker and queue (migration 0004)
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
    # Set only when the root is another task (a workflow member); NULL means the task is its own root, as
    # Celery's root_id then says. Most tasks are their own root: this saves 36 bytes a row.
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
    # Merge bookkeeping (webui.collector.merge): where the current state sits and how it got there.
    attempt = IntegerField(default=0)
    delivery = IntegerField(default=0)
    rank = IntegerField(default=-1)
    started_attempt = IntegerField(default=0)
    started_delivery = IntegerField(default=0)
    starts = IntegerField(default=0)
    executions = IntegerField(default=0)
    event_count = IntegerField(default=0)
    detail = TextField(null=True)  # JSON: terminated, signum, expired, requeue, duplicate_starts, lost_*,
    #                                      unknown_since
    updated_at = DoubleField()  # the last event's arrival; indexed with state for retention (migration 0012)
    progress_every = DoubleField(null=True)  # the running delivery's promise, seconds (migration 0018)

    @property
    def unknown_since(self) -> float | None:
        """When the monitor last heard of this unfinished task, if a gap since left it unaccounted for:
        reconciliation found it neither on a worker nor in the result backend (webui.collector.reconcile)."""
        if not self.detail or "unknown_since" not in self.detail:  # most rows: no JSON to parse
            return None
        value = fastjson.loads_as(self.detail, dict).get("unknown_since")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def running_progress(self) -> dict[str, Any] | None:
        """While the task runs, what it last said with webui.agent.report_progress (`current`, `total`,
        `message`), for the tasks list's bar; the task page shows more (webui.views.task_detail)."""
        if self.state != "STARTED" or not self.detail or '"progress"' not in self.detail:
            return None
        value = fastjson.loads_as(self.detail, dict).get("progress")
        numbers = isinstance(value, dict) and all(isinstance(value.get(k), int | float) for k in ("current", "total"))
        return value if numbers and value["total"] > 0 else None


class TaskEvent(BaseModel):
    """A task's events in arrival order: `timestamp` as sent, `received` when the collector got it."""

    task_id = IntegerField()
    seq = IntegerField()
    type = CharField(max_length=64)
    timestamp = DoubleField(null=True)
    received = DoubleField()
    hostname = CharField(max_length=255, null=True)
    pid = IntegerField(null=True)
    clock = IntegerField(null=True)
    source = CharField(max_length=16, null=True)  # None: the event stream; "inspect", "backend": repairs; "detector"
    data = TextField(null=True)  # JSON of the fields the task row does not hold

    class Meta:
        primary_key = CompositeKey("task_id", "seq")


class TaskLog(BaseModel):
    """A line a task logged while it ran (the companion's logs, migration 0016); `omitted` rows are the cap's
    note of what was not kept."""

    id = AutoField()
    task_id = IntegerField()
    attempt = IntegerField()  # 1 for the first run, as the task page numbers attempts
    pid = IntegerField()
    seq = IntegerField()
    hostname = CharField(max_length=255, null=True)
    at = DoubleField(null=True)
    level = CharField(max_length=16, null=True)
    logger = CharField(max_length=255, null=True)
    message = TextField(null=True)
    omitted = IntegerField(null=True)
    omitted_bytes = IntegerField(null=True)
    received = DoubleField()


class Worker(BaseModel):
    hostname = CharField(max_length=255, unique=True)
    pid = IntegerField(null=True)
    sw_ident = CharField(max_length=255, null=True)
    sw_ver = CharField(max_length=255, null=True)
    sw_sys = CharField(max_length=255, null=True)
    freq = DoubleField(null=True)
    loadavg = CharField(max_length=255, null=True)  # JSON list of 3
    processed = IntegerField(null=True)
    active = IntegerField(null=True)
    online = BooleanField(default=False)
    status_changed_at = DoubleField(null=True)
    offline_reason = CharField(max_length=64, null=True)
    first_seen = DoubleField()
    last_seen = DoubleField()  # collector clock: any event from this worker
    last_heartbeat = DoubleField(null=True)  # collector clock
    heartbeat_timestamp = DoubleField(null=True)  # the worker's own clock
    utcoffset = DoubleField(null=True)
    last_task_event_at = DoubleField(null=True)
    # Set by the web process only (migration 0007): the `last_seen` at which the worker was forgotten. It is
    # hidden while `last_seen <= forgotten_at`; its next event moves `last_seen` on and brings it back.
    forgotten_at = DoubleField(null=True)


class WorkerEvent(BaseModel):
    """Online/offline transitions of a worker, with the reason (`worker-offline` or a heartbeat timeout)."""

    worker_id = IntegerField(index=True)
    online = BooleanField()
    at = DoubleField()
    reason = CharField(max_length=64)


class CollectorGap(BaseModel):
    """An interval when the collector could not see events (restart, broker outage, buffer overflow)."""

    started_at = DoubleField()
    ended_at = DoubleField(null=True)
    kind = CharField(max_length=32)
    reason = TextField()
    events_lost = IntegerField(null=True)


class CollectorStatus(BaseModel):
    """One row: the leading collector's heartbeat, connection state and counters."""

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


ALL_MODELS = (Task, TaskEvent, Worker, WorkerEvent, CollectorGap, CollectorStatus)


class WorkerInspection(BaseModel):
    """The latest inspect replies of one worker (`data`: JSON by command), written by the collector's inspector.

    `at` is when that worker last answered; a worker that stops answering keeps its last replies and their time.
    """

    hostname = CharField(max_length=255, unique=True)
    at = DoubleField()
    data = TextField(null=True)  # JSON: {command: reply} for stats, active_queues, registered, active, …
    error = TextField(null=True)  # commands that answered {'error': …} in the latest inspection


class QueueSample(BaseModel):
    """One queue's depth at one moment, written by the collector's queue sampler; kept 7 days.

    `depth`: messages waiting (Redis: every priority list; RabbitMQ: ready). `ready`/`unacked`: RabbitMQ's
    management API, when reachable. `oldest_age`: seconds the oldest waiting message had waited, when known.
    `detail`: JSON (`priorities` on Redis, `source`, notes).
    """

    queue = CharField(max_length=255)  # indexed with `at` (migration 0006)
    at = DoubleField()  # indexed alone too, for every queue's window (migration 0014)
    depth = IntegerField(null=True)
    ready = IntegerField(null=True)
    unacked = IntegerField(null=True)
    consumers = IntegerField(null=True)
    oldest_age = DoubleField(null=True)
    detail = TextField(null=True)


class TaskMinute(BaseModel):
    """Per minute and task name, the stream's task events and a runtime histogram (webui.collector.rollups).

    `minute`: epoch seconds of the minute's start, by the events' own timestamps; `name` "" when not known yet.
    Minute 0 holds, per name, the sums of the minutes retention pruned (webui.store.retention), for /metrics.
    Columns `rt_b00`…`rt_b16` count successful runtimes per bucket of `rollups.RUNTIME_BOUNDS` (added below).
    """

    minute = IntegerField()
    name = CharField(max_length=255)
    received = IntegerField(default=0)
    started = IntegerField(default=0)
    succeeded = IntegerField(default=0)
    failed = IntegerField(default=0)
    retried = IntegerField(default=0)
    revoked = IntegerField(default=0)
    rejected = IntegerField(default=0)
    runtime_sum = DoubleField(default=0)
    runtime_count = IntegerField(default=0)

    class Meta:
        primary_key = CompositeKey("minute", "name")


for _bucket in ROLLUP_BUCKET_COLUMNS:
    TaskMinute._meta.add_field(_bucket, IntegerField(default=0))


class TaskTotal(BaseModel):
    """/metrics' settled totals per task name: what every row below `MetricsCheckpoint`'s boundaries added,
    pruned or not (webui.store.metrics_checkpoint). Before the first checkpoint: only what retention pruned.

    `metric`: sent, wait (`label`: a queue-wait bucket's upper bound, "+Inf" last), wait_us (µs), failed (`label`:
    the exception class), or rollup (`label`: a `task_minute` column).
    """

    name = CharField(max_length=255)
    metric = CharField(max_length=16)
    label = CharField(max_length=160)
    value = DoubleField()

    class Meta:
        primary_key = CompositeKey("name", "metric", "label")


class MetricsCheckpoint(BaseModel):
    """One row (id 1): how far `task_total` reaches — task ids below `task_below`, failures before
    `failed_below`, rollup minutes before `minute_below` (migration 0015). Written by the leading collector."""

    id = IntegerField(primary_key=True)
    task_below = BigIntegerField()
    failed_below = DoubleField()
    minute_below = BigIntegerField()
    advanced_at = DoubleField()


class ApiToken(BaseModel):
    """A bearer token for scripts and Prometheus: only its sha256 is kept; it is shown once, when created."""

    id = AutoField()
    name = CharField(max_length=255)
    role = CharField(max_length=16)
    token_hash = CharField(max_length=64, unique=True)
    prefix = CharField(max_length=16)
    created_at = DoubleField()
    created_by = CharField(max_length=255)
    last_used_at = DoubleField(null=True)
    revoked_at = DoubleField(null=True)


class AuditLog(BaseModel):
    """Every state-changing action: who (and through which login), what, on what, from where, how it ended."""

    id = AutoField()
    at = DoubleField()
    actor = CharField(max_length=255)
    provider = CharField(max_length=64)
    role = CharField(max_length=16, null=True)
    action = CharField(max_length=64)
    target = TextField(null=True)
    address = CharField(max_length=64, null=True)
    result = CharField(max_length=16)
    detail = TextField(null=True)


class AuthFailure(BaseModel):
    """A failed login, by address and by user name, kept 15 minutes for throttling across processes."""

    key = CharField(max_length=320)
    at = DoubleField()


class AppSecret(BaseModel):
    """Secrets the app makes for itself once (the session signing key), shared by every process and host."""

    name = CharField(max_length=64, primary_key=True)
    value = TextField()


class BeatEntry(BaseModel):
    """A beat schedule entry as its source last showed it (webui.beat.watcher); kept after it is removed."""

    id = AutoField()
    source = CharField(max_length=16)
    name = CharField(max_length=255)
    task = CharField(max_length=255)
    schedule = TextField()  # JSON spec (webui.beat.schedule_spec)
    args = TextField(null=True)  # JSON
    kwargs = TextField(null=True)  # JSON
    queue = CharField(max_length=255, null=True)
    options = TextField(null=True)  # JSON
    enabled = BooleanField(default=True)
    description = TextField(null=True)
    last_run_at = DoubleField(null=True)  # the scheduler's own record
    total_run_count = IntegerField(null=True)
    next_due_at = DoubleField(null=True)  # the scheduler's own plan (RedBeat)
    first_seen = DoubleField()
    seen_at = DoubleField()
    changed_at = DoubleField()
    removed_at = DoubleField(null=True)

    class Meta:
        indexes = ((("source", "name"), True),)


class BeatFire(BaseModel):
    """A task the watcher matched to a beat entry: one fire of that entry (its outcome is the task's state)."""

    id = AutoField()
    entry_id = IntegerField()
    task_uuid = CharField(max_length=255)
    at = DoubleField()
    sender = CharField(max_length=255, null=True)
    due = DoubleField(null=True)  # the slot's due time, as the companion in beat stamped it (schema v17)
    failed = TextField(null=True)  # the exception of a publish that failed: an attempt, not a fire

    class Meta:
        indexes = ((("entry_id", "at"), False), (("task_uuid", "entry_id"), True))


class BeatWatch(BaseModel):
    """The beat watcher's progress and evidence, one row (id 1): what it read, up to where, who answered pings."""

    id = IntegerField(primary_key=True)
    task_cursor = IntegerField(default=0)
    checked_at = DoubleField(null=True)
    sources = TextField(null=True)
    ping_at = DoubleField(null=True)
    pong_at = DoubleField(null=True)
    pong_nodes = TextField(null=True)


# -- alerts (webui.alerts; schema v10) ------------------------------------------------------------------------

class AlertRule(BaseModel):
    """Which detector, on what (scope patterns), with which thresholds, how loud, to whom."""

    id = AutoField()
    name = CharField(max_length=255, unique=True)
    detector = CharField(max_length=64)
    scope = TextField(null=True)  # JSON list of shell patterns on a finding's scope; empty: everything
    params = TextField(null=True)  # JSON
    severity = CharField(max_length=16, default="warning")
    channels = TextField(null=True)  # JSON list of channel names
    enabled = BooleanField(default=True)
    consecutive = IntegerField(default=1)
    renotify_minutes = DoubleField(null=True)
    managed_by = CharField(max_length=16, default="ui")  # default, file, ui
    created_at = DoubleField()
    updated_at = DoubleField()


class AlertPending(BaseModel):
    """A finding seen `count` evaluations in a row that has not opened an incident yet ("only after N")."""

    id = AutoField()
    rule_id = IntegerField()
    subject = CharField(max_length=512)
    count = IntegerField(default=0)
    first_seen_at = DoubleField()
    last_seen_at = DoubleField()

    class Meta:
        indexes = ((("rule_id", "subject"), True),)


class AlertIncident(BaseModel):
    """One rule tripping on one subject, from open to resolved: notified once, acked, silenced, reminded."""

    id = AutoField()
    rule_id = IntegerField(index=True)
    subject = CharField(max_length=512)
    scope = CharField(max_length=512, null=True)
    state = CharField(max_length=16)  # open, resolved
    severity = CharField(max_length=16)
    summary = TextField()
    detail = TextField(null=True)
    link = CharField(max_length=1024, null=True)
    opened_at = DoubleField(index=True)
    last_seen_at = DoubleField()
    resolved_at = DoubleField(null=True)
    acked_at = DoubleField(null=True)
    acked_by = CharField(max_length=255, null=True)
    silenced_until = DoubleField(null=True)
    silenced_by = CharField(max_length=255, null=True)
    last_notified_at = DoubleField(null=True)
    notifications = IntegerField(default=0)

    class Meta:
        indexes = ((("state", "opened_at"), False), (("rule_id", "subject", "state"), False))


class AlertIncidentEvent(BaseModel):
    """The incident's timeline: opened, notified, reminded, acked, silenced, delivery failures, resolved."""

    id = AutoField()
    incident_id = IntegerField(index=True)
    at = DoubleField()
    kind = CharField(max_length=32)
    actor = CharField(max_length=255, null=True)
    detail = TextField(null=True)


class AlertChannel(BaseModel):
    id = AutoField()
    name = CharField(max_length=255, unique=True)
    kind = CharField(max_length=32)  # email, slack, discord, webhook, pagerduty
    config = TextField()  # JSON
    enabled = BooleanField(default=True)
    managed_by = CharField(max_length=16, default="ui")
    created_at = DoubleField()
    updated_at = DoubleField()


class AlertNotification(BaseModel):
    """The outbox: one message to one channel, retried with backoff until sent or given up."""

    id = AutoField()
    incident_id = IntegerField(null=True, index=True)
    channel_id = IntegerField()
    kind = CharField(max_length=16)  # opened, reminder, resolved, test
    payload = TextField()
    created_at = DoubleField()
    attempts = IntegerField(default=0)
    next_attempt_at = DoubleField(index=True)
    claimed_until = DoubleField(null=True)
    sent_at = DoubleField(null=True)
    failed_at = DoubleField(null=True)
    last_error = TextField(null=True)


class AlertMaintenance(BaseModel):
    """A window during which the rules it names open no incident and send nothing."""

    id = AutoField()
    name = CharField(max_length=255)
    rules = TextField(null=True)
    starts_at = DoubleField()
    ends_at = DoubleField()
    reason = TextField(null=True)
    created_by = CharField(max_length=255, null=True)
    created_at = DoubleField()
