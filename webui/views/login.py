"""`/login` and `/logout`: the password form, the single-sign-on buttons, and the end of a session."""
from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from webui import audit
from webui.auth import gate
from webui.views.same_origin import check as cross_site

bp = Blueprint("auth", __name__)

MAX_FIELD = 1024


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a path on this site (never `//host` or `https://…`)."""
    root = request.script_root or ""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("home.index")
    return target if target.startswith(root + "/") or not root else root + target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    cfg = gate.config()
    if not cfg.login_required:
        return redirect(url_for("home.index"))
    next_url = request.values.get("next", "")[:MAX_FIELD]
    if request.method == "GET":
        if g.get("identity") is not None:
            return redirect(safe_next(next_url))
        return render_template("login.html", page_title="Log in", next_url=next_url, error=None)
    problem = cross_site(request)
    if problem:
        return render_template("login.html", page_title="Log in", next_url=next_url,
                               error=f"Refused as a cross-site request: {problem}."), 403
    username = request.form.get("username", "")[:MAX_FIELD]
    password = request.form.get("password", "")[:MAX_FIELD]
    identity, refusal = gate.check_password(cfg, username, password)
    if identity is None:
        assert refusal is not None
        g.identity = None
        audit.record("login", username, "refused", status=refusal.status)
        return render_template("login.html", page_title="Log in", next_url=next_url, error=refusal.message,
                               username=username), refusal.status
    gate.log_in(identity)
    g.identity = identity
    audit.record("login", identity.username, "ok", provider="basic")
    return redirect(safe_next(next_url))


@bp.post("/logout")
def logout() -> Response:
    if session.get("identity") and not cross_site(request):
        audit.record("logout", None, "ok")
    session.clear()
    return redirect(url_for("auth.login") if gate.config().login_required else url_for("home.index"))
