"""The audit log: every state-changing action, who did it (and through which login), to what, from where."""
from __future__ import annotations

import json
import time
from typing import Any

from flask import g, request

from webui.store.models import AuditLog

PAGE = 100


def record(action: str, target: str | None, result: str = "ok", **detail: Any) -> None:
    """Write one entry for the current request's identity (see webui.auth.gate)."""
    identity = getattr(g, "identity", None)
    AuditLog.create(
        at=time.time(), actor=identity.label if identity else "anonymous",
        provider=identity.provider if identity else "none", role=identity.role if identity else None,
        action=action, target=(target or "")[:2000] or None, address=(request.remote_addr or "")[:64] or None,
        result=result, detail=json.dumps(detail, default=str)[:4000] if detail else None)


def entries(before_id: int | None = None, limit: int = PAGE) -> list[AuditLog]:
    """Newest first, keyset-paged by id."""
    query = AuditLog.select().order_by(AuditLog.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditLog.id < before_id)
    return list(query)
