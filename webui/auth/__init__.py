"""Who may see and do what: logins (passwords, OAuth/OIDC), roles, API tokens, CSRF, the request gate.

`init_app(app)` wires it all: webui.auth.gate decides on every request who the caller is (session cookie,
bearer token or an HTTP Basic header) and refuses what that identity may not reach.
"""
from __future__ import annotations

import ipaddress
from typing import Any


def login_configured(settings: Any) -> bool:
    """Is any way to log in configured (passwords, or an OAuth/OIDC provider)?"""
    from webui.auth import oauth_settings

    return bool(settings.basic_auth) or oauth_settings.any_configured(settings)


def is_loopback(address: str) -> bool:
    host = address.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(settings: Any) -> str | None:
    """Why serving with these settings would expose an open UI, or None."""
    from webui.auth import oauth_settings

    oauth_problem = oauth_settings.problem(settings)  # e.g. an OAuth app with no allow-list: open to all
    if oauth_problem:
        return oauth_problem
    if login_configured(settings) or is_loopback(settings.address) or settings.insecure_no_auth:
        return None
    return (f"refusing to listen on {settings.address} with no login configured: anyone who reaches it could "
            "read task arguments and control workers. Configure --basic-auth (see `webui hash-password`) or "
            "an OAuth provider, listen on 127.0.0.1, or pass --insecure-no-auth if a proxy in front "
            "authenticates every request.")
