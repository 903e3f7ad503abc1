"""Single sign-on: `/login/oauth` sends the browser to the provider, `/login/oauth/callback` logs it in.

Authlib does the protocol: a random `state` bound to this browser's session, PKCE (S256), and for OpenID
Connect a nonce and the ID token's signature (JWKS), issuer, audience and expiry. We then ask who the user is
(userinfo; GitHub's REST API), keep them only if `auth_allow` names them and a role is theirs, and start a
session with webui.auth.gate.log_in. Where to go afterwards travels inside the session with the state, never
in a parameter the provider (or an attacker) hands back. Every outcome is in the audit log; every failure
shows the login page with what went wrong, never a 500.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from webui import audit
from webui.auth import gate, oauth_settings, roles
from webui.auth.identity import Identity
from webui.auth.oauth_identity import from_github, from_oidc
from webui.auth.oauth_settings import ProviderSpec
from webui.auth.roles import Rule
from webui.request_lane import outside_lane

log = logging.getLogger(__name__)

bp = Blueprint("oauth", __name__)
EXTENSION = "webui_oauth"
TIMEOUT = 10.0  # seconds for each call to the provider
GITHUB_PAGES = 10  # of 100 orgs or teams each
MAX_FIELD = 1024


class LoginRefused(Exception):
    """The provider answered, but this login does not go ahead; `status` and the message say why."""

    def __init__(self, status: int, message: str, reason: str, who: str | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.who = status, reason, who


class Provider:
    """The configured provider, as the login page (label, login_url) and the gate (name, allows) see it."""

    def __init__(self, spec: ProviderSpec, client: Any, allow: list[Rule], redirect_uri: str | None) -> None:
        self.spec, self.client, self.allow, self.redirect_uri = spec, client, allow, redirect_uri

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        return self.spec.label

    def login_url(self, next_url: str | None = None) -> str:
        return url_for("oauth.start", next=next_url) if next_url else url_for("oauth.start")

    def allows(self, identity: Identity) -> bool:
        return oauth_settings.allowed(identity, self.allow)


def init_app(app: Flask, settings: Any) -> None:
    """Register the provider `settings` configure (if any): its client, routes and login button."""
    spec = oauth_settings.spec(settings)
    if spec is None:
        return
    problem = oauth_settings.problem(settings)
    if problem:  # `webui serve` says so before starting; this catches other ways of building the app
        raise RuntimeError(problem)
    client_kwargs: dict[str, Any] = {"scope": " ".join(spec.scopes), "code_challenge_method": "S256",
                                     "default_timeout": TIMEOUT}
    if not spec.is_oidc:
        client_kwargs["token_endpoint_auth_method"] = "client_secret_post"  # GitHub's documented way
    client = OAuth(app).register(
        "webui_sso", client_id=settings.oauth_client_id, client_secret=settings.oauth_client_secret,
        server_metadata_url=spec.discovery_url, authorize_url=spec.authorize_url,
        access_token_url=spec.token_url, api_base_url=spec.api_url, client_kwargs=client_kwargs)
    provider = Provider(spec, client, oauth_settings.allow_rules(settings.auth_allow), settings.oauth_redirect_uri)
    app.extensions[EXTENSION] = provider
    cfg = app.extensions["webui_auth"]
    cfg.providers.append(provider)
    cfg.public.update({"oauth.start", "oauth.callback"})
    app.register_blueprint(bp)


def _provider() -> Provider:
    return current_app.extensions[EXTENSION]


@bp.get("/login/oauth")
@outside_lane
def start() -> Response | tuple[str, int]:
    """Send the browser to the provider, with a fresh state, nonce and PKCE verifier kept in the session."""
    from webui.views.login import safe_next

    provider = _provider()
    next_url = safe_next(request.args.get("next", "")[:MAX_FIELD])
    if g.get("identity") is not None:
        return redirect(next_url)
    redirect_uri = provider.redirect_uri or url_for("oauth.callback", _external=True)
    try:
        authorization = provider.client.create_authorization_url(redirect_uri)
    except Exception as exc:  # the discovery document: network, TLS, not JSON
        log.warning("cannot start the %s login: %r", provider.label, exc)
        return _login_page(401, f"Could not reach {provider.label} to start the login "
                                f"({type(exc).__name__}): try again, or ask an admin to check the OAuth "
                                "settings.", next_url)
    data = {key: value for key, value in authorization.items() if key != "url"}
    provider.client.save_authorize_data(redirect_uri=redirect_uri, next=next_url, **data)
    return redirect(authorization["url"])


@bp.get("/login/oauth/callback")
@outside_lane
def callback() -> Response | tuple[str, int]:
    """The provider sends the browser back here with a code (or an error) and our state."""
    from webui.views.login import safe_next

    provider = _provider()
    g.identity = None
    state = request.args.get("state", "")[:MAX_FIELD]
    pending = provider.client.framework.get_state_data(session, state) if state else None
    next_url = safe_next(pending.get("next") if pending else None)
    try:
        if request.args.get("error"):
            provider.client.framework.clear_state_data(session, state)
            error = request.args.get("error", "")[:100]
            description = request.args.get("error_description", "")[:300]
            raise LoginRefused(401, f"{provider.label} did not log you in: {error}"
                                    f"{f' ({description})' if description else ''}.", f"provider: {error}")
        if pending is None:
            raise LoginRefused(403, "This login does not match one started in this browser (it expired, was "
                                    "already used, or its state was altered): start again.", "state mismatch")
        identity = _log_in(provider)
    except LoginRefused as refused:
        audit.record("login", refused.who, "refused", provider=provider.name, reason=refused.reason)
        return _login_page(refused.status, str(refused), next_url)
    audit.record("login", identity.label, "ok", provider=provider.name)
    return redirect(next_url)


def _log_in(provider: Provider) -> Identity:
    """Exchange the code, learn who this is, check the allow-list and the role, start the session."""
    try:
        token = provider.client.authorize_access_token()
        identity = _oidc_identity(provider, token) if provider.spec.is_oidc else _github_identity(provider)
    except LoginRefused:
        raise
    except OAuthError as exc:  # a bad code, a refused client secret, the state (replayed), …
        log.warning("%s login failed: %r", provider.label, exc)
        raise LoginRefused(401, f"Login with {provider.label} failed: {_short(exc)}.",
                           f"oauth: {exc.error}") from None
    except Exception as exc:  # network, an invalid ID token (signature, issuer, audience, nonce, expiry)
        log.warning("%s login failed", provider.label, exc_info=True)
        raise LoginRefused(401, f"Login with {provider.label} failed: {_short(exc)}.",
                           f"error: {type(exc).__name__}") from None
    cfg = gate.config()
    identity = oauth_settings.keep_relevant(identity, [*provider.allow, *cfg.rules])
    if not provider.allows(identity):
        unverified = "" if identity.email_verified or not identity.email else \
            f" (its email address is not verified by {provider.label})"
        raise LoginRefused(403, f"{identity.label} may not log in here{unverified}: ask an admin to add you "
                                "to --auth-allow.", "not on the allow-list", identity.label)
    role = roles.role_for(identity, cfg.rules, cfg.default_role)
    if role is None:
        raise LoginRefused(403, f"{identity.label} has no role here (default role: none).", "no role",
                           identity.label)
    identity = dataclasses.replace(identity, role=role)
    gate.log_in(identity)
    g.identity = identity
    return identity


def _oidc_identity(provider: Provider, token: dict[str, Any]) -> Identity:
    claims = token.get("userinfo")  # the validated ID token (Authlib checked signature, nonce, iss, aud, exp)
    if not claims:
        raise LoginRefused(401, f"{provider.label} sent no ID token.", "no id_token")
    merged = dict(claims)
    if provider.client.load_server_metadata().get("userinfo_endpoint"):
        info = provider.client.userinfo()  # GitLab's groups, and Okta's, may only be here
        if info.get("sub") != claims.get("sub"):
            raise LoginRefused(401, f"{provider.label}'s userinfo is about someone else.", "userinfo sub mismatch")
        merged = {**info, **claims}  # the signed ID token wins
    return from_oidc(provider.name, merged, provider.spec.groups_claim)


def _github_identity(provider: Provider) -> Identity:
    cfg = gate.config()
    kinds = {rule.kind for rule in [*provider.allow, *cfg.rules]}
    user = _github_get(provider, "user")
    emails = _github_list(provider, "user/emails")
    orgs = _github_list(provider, "user/orgs") if "org" in kinds else []
    teams = _github_list(provider, "user/teams") if kinds & {"org", "team"} else []
    return from_github(provider.name, user, emails, orgs, teams)


def _github_get(provider: Provider, path: str) -> Any:
    response = provider.client.get(path, headers={"Accept": "application/vnd.github+json"})
    response.raise_for_status()
    return response.json()


def _github_list(provider: Provider, path: str) -> list[Any]:
    items: list[Any] = []
    url: str | None = f"{path}?per_page=100"
    for _ in range(GITHUB_PAGES):
        if url is None:
            break
        response = provider.client.get(url, headers={"Accept": "application/vnd.github+json"})
        response.raise_for_status()
        page = response.json()
        items += page if isinstance(page, list) else []
        url = response.links.get("next", {}).get("url")
        if url and not url.startswith(provider.spec.api_url or ""):
            break  # never send the token anywhere but the API it belongs to
    return items


def _login_page(status: int, message: str, next_url: str) -> tuple[str, int]:
    return render_template("login.html", page_title="Log in", next_url=next_url, error=message), status


def _short(exc: Exception) -> str:
    text = getattr(exc, "description", None) or str(exc) or type(exc).__name__
    return str(text)[:200]
