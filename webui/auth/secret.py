"""The session signing key: from the `secret_key` setting, else made once and kept in the database.

Kept in the database (not a file) so every gunicorn process and every host on one PostgreSQL signs and
reads sessions with the same key, and a restart logs nobody out.
"""
from __future__ import annotations

import logging
import secrets

from peewee import Database, DatabaseError

from webui.store.models import AppSecret

log = logging.getLogger(__name__)

SESSION_KEY = "session_key"


def session_key(db: Database, configured: str | None) -> str:
    if configured:
        return configured
    try:
        return _stored_key(db)
    except DatabaseError as exc:  # no schema yet (an app built before `webui migrate`): this process only
        log.warning("no stored session key (%s): using one for this process; sessions end at restart", exc)
        return secrets.token_urlsafe(48)


def _stored_key(db: Database) -> str:
    with db.connection_context():
        existing = AppSecret.get_or_none(AppSecret.name == SESSION_KEY)
        if existing is not None:
            return str(existing.value)
        # Two processes starting at once: one insert wins, both read the winner.
        AppSecret.insert(name=SESSION_KEY, value=secrets.token_urlsafe(48)).on_conflict_ignore().execute()
        return str(AppSecret.get(AppSecret.name == SESSION_KEY).value)
