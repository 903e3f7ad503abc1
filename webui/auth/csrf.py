"""CSRF: a state-changing request from a browser must come from this site, and a logged-in browser must also
send its session's token (form field `csrf_token` or header `X-CSRF-Token`; base.html gives htmx the header).

Bearer-token requests are exempt: a browser never adds a bearer token by itself. A request with no browser
signal at all (no `Sec-Fetch-Site`, no `Origin`) comes from a script, which a cross-site page cannot make a
browser send; it still needs its own credentials.
"""
from __future__ import annotations

import hmac
import secrets

from flask import request, session

from webui.auth.identity import Identity
from webui.views import same_origin


def token() -> str:
    """This session's CSRF token (made on first use)."""
    value = session.get("csrf")
    if not isinstance(value, str):
        value = session["csrf"] = secrets.token_urlsafe(32)
    return value


def problem(identity: Identity, *, from_session: bool) -> str | None:
    """Why this state-changing request is refused, or None."""
    if identity.provider == "token":
        return None
    browser = request.headers.get("Sec-Fetch-Site") or request.headers.get("Origin")
    if browser:
        cross_site = same_origin.check(request)
        if cross_site:
            return cross_site
    elif not from_session:
        return None  # a script with its own credentials (Basic header), or a local script with no login
    if from_session:
        sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
        expected = session.get("csrf")
        if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
            return "the form's CSRF token is missing or out of date (reload the page and try again)"
    return None
