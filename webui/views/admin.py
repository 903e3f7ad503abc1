"""`/admin/…`: API tokens (create, shown once; revoke) and the audit log. Admins only."""
from __future__ import annotations

from flask import Blueprint, g, render_template, request

from webui import audit
from webui.auth import tokens
from webui.auth.access import requires
from webui.auth.roles import ROLES

bp = Blueprint("admin", __name__)

MAX_NAME = 255


@bp.get("/admin/tokens")
@requires("admin", control=False)
def tokens_page() -> str:
    return render_template("admin/tokens.html", page_title="API tokens", tokens=tokens.listing(), roles=ROLES,
                           created=None, error=None)


# The endpoint the navigation links to.
bp.add_url_rule("/admin", "tokens", tokens_page)


@bp.post("/admin/tokens")
@requires("admin", control=False)
def create_token() -> tuple[str, int] | str:
    name = request.form.get("name", "").strip()
    role = request.form.get("role", "")
    error = None
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        error = f"Give the token a name of 1 to {MAX_NAME} printable characters (what uses it)."
    elif role not in ROLES:
        error = f"The role must be one of {', '.join(ROLES)}."
    if error:
        return render_template("admin/tokens.html", page_title="API tokens", tokens=tokens.listing(),
                               roles=ROLES, created=None, error=error), 400
    row, token = tokens.create(name, role, g.identity.label)
    audit.record("token-create", name, "ok", role=role, prefix=row.prefix)
    return render_template("admin/tokens.html", page_title="API tokens", tokens=tokens.listing(), roles=ROLES,
                           created=(row, token), error=None)


@bp.post("/admin/tokens/<int:token_id>/revoke")
@requires("admin", control=False)
def revoke_token(token_id: int) -> tuple[str, int] | str:
    revoked = tokens.revoke(token_id)
    audit.record("token-revoke", str(token_id), "ok" if revoked else "failed")
    status = 200 if revoked else 404
    error = None if revoked else "No live token has that id (already revoked?)."
    return render_template("admin/tokens.html", page_title="API tokens", tokens=tokens.listing(), roles=ROLES,
                           created=None, error=error), status


@bp.get("/admin/audit")
@requires("admin", control=False)
def audit_log() -> tuple[str, int] | str:
    before = request.args.get("before", "")
    if before and (not before.isdigit() or len(before) > 18):
        return render_template("error.html", status=400, message="'before' must be an entry id.",
                               page_title="400"), 400
    entries = audit.entries(int(before) if before else None)
    return render_template("admin/audit.html", page_title="Audit log", entries=entries,
                           more=len(entries) == audit.PAGE)
