"""Schema v8: API tokens, the audit log, login failures (for throttling) and the app's own secrets (frozen copy)."""
from peewee import CharField, DoubleField, Model, TextField


def up(migrator, db):
    class Meta:
        database = db
        legacy_table_names = False

    class ApiToken(Model):
        name = CharField(max_length=255)
        role = CharField(max_length=16)
        token_hash = CharField(max_length=64, unique=True)  # sha256 hex of the token: it is shown once only
        prefix = CharField(max_length=16)  # the token's first characters, to recognise it in lists
        created_at = DoubleField()
        created_by = CharField(max_length=255)
        last_used_at = DoubleField(null=True)
        revoked_at = DoubleField(null=True)

        class Meta:
            database = db
            legacy_table_names = False

    class AuditLog(Model):
        at = DoubleField(index=True)
        actor = CharField(max_length=255)
        provider = CharField(max_length=64)
        role = CharField(max_length=16, null=True)
        action = CharField(max_length=64)
        target = TextField(null=True)
        address = CharField(max_length=64, null=True)
        result = CharField(max_length=16)  # ok, refused, failed
        detail = TextField(null=True)

        class Meta:
            database = db
            legacy_table_names = False

    class AuthFailure(Model):
        key = CharField(max_length=320, index=True)  # "addr:<ip>" or "user:<name>"
        at = DoubleField(index=True)

        class Meta:
            database = db
            legacy_table_names = False

    class AppSecret(Model):
        name = CharField(max_length=64, primary_key=True)
        value = TextField()

        class Meta:
            database = db
            legacy_table_names = False

    db.create_tables([ApiToken, AuditLog, AuthFailure, AppSecret])
