"""The request gate: who is calling, and may they reach this route at all.

On every request: a bearer token (`Authorization: Bearer cwu_…`), an HTTP Basic header (scripts, curl), or
the session cookie of a browser login says who the caller is; `g.identity` holds it. Only public routes
(`/healthcheck`, static files, the login pages) answer without one. A browser is sent to the login page;
anything else gets 401. State-changing requests also pass webui.auth.csrf. With no login configured at
all, everyone is an admin — which is why the server then refuses to listen beyond loopback
(`--insecure-no-auth` to insist).
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask, Response, g, jsonify, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from webui.auth import csrf, passwords, roles, secret, throttle, tokens
from webui.auth.identity import Identity

# Only the liveness probe is anonymous by default; the other probes (webui/views/probes.py) with
# `probes_public`, /metrics with `metrics_public`.
PUBLIC_ENDPOINTS = {"static", "health.healthcheck", "auth.login", "auth.logout"}
PROBE_ENDPOINTS = {"probes.workers", "probes.queue", "probes.beat"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass
class AuthConfig:
    users: dict[str, str]
    rules: list[roles.Rule]
    default_role: str
    max_failures: int
    lifetime: float  # seconds
    read_only: bool
    providers: list[Any] = field(default_factory=list)  # OAuth/OIDC providers (webui.auth.oauth)
    public: set[str] = field(default_factory=lambda: set(PUBLIC_ENDPOINTS))

    @property
    def login_required(self) -> bool:
        return bool(self.users or self.providers)


class _SessionInterface(SecureCookieSessionInterface):
    """Secure cookies whenever the request is HTTPS (or the setting says the proxy hides that it is)."""

    def __init__(self, always_secure: bool) -> None:
        self.always_secure = always_secure

    def get_cookie_secure(self, app: Flask) -> bool:
        return self.always_secure or request.is_secure

    def get_cookie_path(self, app: Flask) -> str:
        # Under a path prefix (set here or by a proxy), the cookie belongs to the prefix only.
        return (request.script_root or "") + "/"


def config() -> AuthConfig:
    from flask import current_app

    return current_app.extensions["webui_auth"]


def init_app(app: Flask, settings: Any, db: Any) -> None:
    app.extensions["webui_auth"] = AuthConfig(
        users=passwords.parse_users(settings.basic_auth), rules=roles.parse_rules(settings.roles),
        default_role=settings.default_role, max_failures=settings.login_max_failures,
        lifetime=settings.session_lifetime * 3600, read_only=settings.read_only)
    if settings.probes_public:
        app.extensions["webui_auth"].public.update(PROBE_ENDPOINTS)
    app.secret_key = secret.session_key(db, settings.secret_key)
    app.config.update(SESSION_COOKIE_NAME="webui_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax",
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_lifetime))
    app.session_interface = _SessionInterface(settings.secure_cookies)
    app.before_request(gate)
    app.context_processor(_template_helpers)


def gate() -> Response | None:
    cfg = config()
    identity, refusal = identify(cfg)
    if refusal is not None:
        return refusal
    g.identity = identity
    public = request.endpoint in cfg.public or request.endpoint is None
    if identity is None and not public:
        return challenge(cfg)
    if request.method not in SAFE_METHODS and identity is not None:
        problem = csrf.problem(identity, from_session=g.get("identity_from_session", False))
        if problem:
            return error_response(403, f"Refused as a cross-site request: {problem}.")
    return None


def identify(cfg: AuthConfig) -> tuple[Identity | None, Response | None]:
    """The caller's identity (None: anonymous), or the answer that refuses the credentials they sent."""
    if not cfg.login_required:
        return Identity("anonymous", "none", role="admin"), None
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        row = tokens.lookup(credentials.strip())
        if row is None:
            return None, error_response(401, "That API token is unknown or revoked.", bearer=True)
        return Identity(f"token:{row.name}", "token", role=row.role), None
    if scheme.lower() == "basic" and cfg.users:
        return _basic_header(cfg, credentials.strip())
    return _from_session(cfg), None


def _basic_header(cfg: AuthConfig, credentials: str) -> tuple[Identity | None, Response | None]:
    import base64
    import binascii

    try:
        username, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, error_response(401, "The Basic credentials are not base64 of USER:PASSWORD.")
    identity, refusal = check_password(cfg, username, password)
    return identity, refusal.response() if refusal else None


@dataclass
class Refusal:
    status: int
    message: str
    retry_after: int | None = None

    def response(self) -> Response:
        response = error_response(self.status, self.message)
        if self.retry_after:
            response.headers["Retry-After"] = str(self.retry_after)
        return response


def check_password(cfg: AuthConfig, username: str, password: str) -> tuple[Identity | None, Refusal | None]:
    """A password login (form or Basic header), throttled; a refusal says why without saying which part."""
    wait = throttle.retry_after(request.remote_addr, username, cfg.max_failures)
    if wait > 0:
        return None, Refusal(429, f"Too many failed logins: try again in {int(wait // 60) + 1} min.",
                             int(wait) + 1)
    if not passwords.verify(cfg.users, username, password):
        throttle.record_failure(request.remote_addr, username)
        return None, Refusal(401, "Wrong user name or password.")
    identity = _with_role(cfg, Identity(username, "basic"))
    if identity is None:
        return None, Refusal(403, f"{username} has no role here (default role: none).")
    return identity, None


def _with_role(cfg: AuthConfig, identity: Identity) -> Identity | None:
    role = roles.role_for(identity, cfg.rules, cfg.default_role)
    if role is None:
        return None
    return Identity(**{**identity.__dict__, "role": role})


def _from_session(cfg: AuthConfig) -> Identity | None:
    data = session.get("identity")
    if not isinstance(data, dict):
        return None
    if time.time() - float(session.get("login_at", 0)) > cfg.lifetime:
        session.clear()
        return None
    stored = Identity.from_session(data)
    if stored.provider == "basic" and stored.username not in cfg.users:
        session.clear()  # removed from the configuration: the login ends
        return None
    if stored.provider != "basic" and not any(p.name == stored.provider and p.allows(stored)
                                              for p in cfg.providers):
        session.clear()  # an OAuth login whose provider, or allow-list, no longer lets them in
        return None
    # Roles come from the configuration in effect now, not from when the user logged in.
    identity = _with_role(cfg, stored)
    if identity is None:
        session.clear()
        return None
    g.identity_from_session = True
    return identity


def log_in(identity: Identity) -> None:
    """Start a browser session for `identity` (a fresh one: no session fixation)."""
    session.clear()
    session["identity"] = identity.to_session()
    session["login_at"] = time.time()
    session["csrf"] = secrets.token_urlsafe(32)
    session.permanent = True


def wants_html() -> bool:
    if request.headers.get("HX-Request") or request.headers.get("Upgrade", "").lower() == "websocket":
        return False
    accept = request.accept_mimetypes
    return accept.best_match(["text/html", "application/json"]) == "text/html" and not _is_api()


def _is_api() -> bool:
    path = request.path
    return path.startswith(("/api/", "/health/")) or path == "/metrics"


def challenge(cfg: AuthConfig) -> Response:
    if request.method == "GET" and wants_html():
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))  # type: ignore[return-value]
    response = error_response(401, "Log in first: this page needs a login (or an API token).")
    if request.headers.get("HX-Request"):
        response.headers["HX-Redirect"] = url_for("auth.login")
    return response


def error_response(status: int, message: str, bearer: bool = False) -> Response:
    """A JSON error for API clients and scripts, a short HTML page for browsers."""
    if wants_html() or request.headers.get("HX-Request"):
        from flask import render_template

        response = Response(render_template("error.html", status=status, message=message,
                                            page_title=f"{status}"), status=status)
    else:
        response = jsonify({"error": message, "status": status})
        response.status_code = status
    if status == 401:
        cfg = config()
        response.headers["WWW-Authenticate"] = ('Basic realm="Celery WebUI"' if cfg.users and not bearer
                                                else 'Bearer realm="Celery WebUI"')
    return response


def _template_helpers() -> dict[str, Any]:
    cfg = config()

    def can(role: str, control: bool = True) -> bool:
        identity = g.get("identity")
        if control and cfg.read_only:
            return False
        return identity is not None and roles.at_least(identity.role, role)

    return {"current_identity": g.get("identity"), "can": can, "csrf_token": csrf.token,
            "login_required": cfg.login_required, "login_password": bool(cfg.users),
            "oauth_providers": lambda: list(cfg.providers), "read_only": cfg.read_only}
