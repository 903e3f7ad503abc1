"""API tokens: `cwu_<random>` bearer tokens with a role; only their sha256 is stored."""
from __future__ import annotations

import hashlib
import secrets
import time

from webui.store.models import ApiToken

PREFIX = "cwu_"
TOUCH_EVERY = 60.0  # seconds: last-used time is written at most this often per token


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(name: str, role: str, created_by: str) -> tuple[ApiToken, str]:
    """A new token: its row, and the token itself (shown to the admin once, never again)."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.create(name=name, role=role, token_hash=_digest(token), prefix=token[:10],
                          created_at=time.time(), created_by=created_by)
    return row, token


def lookup(token: str) -> ApiToken | None:
    """The live (not revoked) token row for `token`, with its last use recorded."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = ApiToken.get_or_none((ApiToken.token_hash == _digest(token)) & ApiToken.revoked_at.is_null())
    if row is not None:
        now = time.time()
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
            ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
            row.last_used_at = now
    return row


def revoke(token_id: int) -> bool:
    return bool(ApiToken.update(revoked_at=time.time())
                .where((ApiToken.id == token_id) & ApiToken.revoked_at.is_null()).execute())


def listing() -> list[ApiToken]:
    return list(ApiToken.select().order_by(ApiToken.revoked_at.is_null().desc(), ApiToken.created_at.desc()))
