"""Schema v10: alert rules, incidents and their timeline, channels, the notification outbox, maintenance windows,
and the engine's pending counts (frozen copy of the Alert* models in webui.store.models)."""
from peewee import BooleanField, CharField, DoubleField, IntegerField, Model, TextField


def up(migrator, db):
    class Meta:
        database = db
        legacy_table_names = False

    class AlertRule(Model):
        name = CharField(max_length=255, unique=True)
        detector = CharField(max_length=64)
        scope = TextField(null=True)  # JSON list of shell patterns on the finding's scope; empty: everything
        params = TextField(null=True)  # JSON: the detector's thresholds and windows
        severity = CharField(max_length=16, default="warning")  # info, warning, critical
        channels = TextField(null=True)  # JSON list of channel names
        enabled = BooleanField(default=True)
        consecutive = IntegerField(default=1)  # evaluations in a row before an incident opens
        renotify_minutes = DoubleField(null=True)  # remind while open; None: notify once
        managed_by = CharField(max_length=16, default="ui")  # default, file, ui
        created_at = DoubleField()
        updated_at = DoubleField()

        class Meta:
            database = db
            legacy_table_names = False

    class AlertPending(Model):
        rule_id = IntegerField()
        subject = CharField(max_length=512)
        count = IntegerField(default=0)
        first_seen_at = DoubleField()
        last_seen_at = DoubleField()

        class Meta:
            database = db
            legacy_table_names = False
            indexes = ((("rule_id", "subject"), True),)

    class AlertIncident(Model):
        rule_id = IntegerField(index=True)
        subject = CharField(max_length=512)
        scope = CharField(max_length=512, null=True)
        state = CharField(max_length=16)  # open, resolved
        severity = CharField(max_length=16)
        summary = TextField()
        detail = TextField(null=True)  # JSON
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
            database = db
            legacy_table_names = False
            indexes = ((("state", "opened_at"), False), (("rule_id", "subject", "state"), False))

    class AlertIncidentEvent(Model):
        incident_id = IntegerField(index=True)
        at = DoubleField()
        kind = CharField(max_length=32)  # opened, notified, reminded, acked, silenced, unsilenced, resolved, ...
        actor = CharField(max_length=255, null=True)
        detail = TextField(null=True)

        class Meta:
            database = db
            legacy_table_names = False

    class AlertChannel(Model):
        name = CharField(max_length=255, unique=True)
        kind = CharField(max_length=32)  # email, slack, discord, webhook, pagerduty
        config = TextField()  # JSON: URL, addresses, secrets
        enabled = BooleanField(default=True)
        managed_by = CharField(max_length=16, default="ui")
        created_at = DoubleField()
        updated_at = DoubleField()

        class Meta:
            database = db
            legacy_table_names = False

    class AlertNotification(Model):
        incident_id = IntegerField(null=True, index=True)  # None: a "send test" message
        channel_id = IntegerField()
        kind = CharField(max_length=16)  # opened, reminder, resolved, test
        payload = TextField()  # JSON: the message as built when queued
        created_at = DoubleField()
        attempts = IntegerField(default=0)
        next_attempt_at = DoubleField(index=True)
        claimed_until = DoubleField(null=True)
        sent_at = DoubleField(null=True)
        failed_at = DoubleField(null=True)  # gave up
        last_error = TextField(null=True)

        class Meta:
            database = db
            legacy_table_names = False

    class AlertMaintenance(Model):
        name = CharField(max_length=255)
        rules = TextField(null=True)  # JSON list of shell patterns on rule names; empty: every rule
        starts_at = DoubleField()
        ends_at = DoubleField()
        reason = TextField(null=True)
        created_by = CharField(max_length=255, null=True)
        created_at = DoubleField()

        class Meta:
            database = db
            legacy_table_names = False

    db.create_tables([AlertRule, AlertPending, AlertIncident, AlertIncidentEvent, AlertChannel, AlertNotification,
                      AlertMaintenance])
