"""Which OAuth/OIDC provider the settings configure, where it lives, and who it lets in (pure; no I/O).

One provider per instance: `oauth_provider` names it. Google, GitLab, Okta and any `oidc` provider speak
OpenID Connect, found by discovery; GitHub (and GitHub Enterprise) is plain OAuth 2 plus its REST API.
The allow-list `auth_allow` holds KIND:VALUE selectors matched exactly (webui.auth.roles.Rule), never as
patterns: Flower's CVE-2022-30034 let `alice@example.com.evil.org` through an unanchored regex.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webui.auth.identity import Identity
from webui.auth.roles import KINDS, Rule

LABELS = {"google": "Google", "github": "GitHub", "gitlab": "GitLab", "okta": "Okta", "oidc": "single sign-on"}
DISCOVERY = "/.well-known/openid-configuration"
GOOGLE_DISCOVERY = "https://accounts.google.com" + DISCOVERY
GITLAB_URL = "https://gitlab.com"
GITHUB_URL = "https://github.com"
OIDC_SCOPES = ("openid", "email", "profile")
# read:org: without it /user/orgs and /user/teams leave out private memberships.
GITHUB_SCOPES = ("read:user", "user:email", "read:org")
# What each provider can tell us about a user: a selector of another kind could never match.
PROVIDER_KINDS = {"github": ("user", "email", "domain", "org", "team"),
                  "google": ("user", "email", "domain")}
DEFAULT_KINDS = ("user", "email", "domain", "group")


@dataclass(frozen=True)
class ProviderSpec:
    name: str  # google, github, gitlab, okta, oidc: also Identity.provider
    label: str
    scopes: tuple[str, ...]
    groups_claim: str = "groups"
    discovery_url: str | None = None  # OpenID Connect providers
    authorize_url: str | None = None  # GitHub
    token_url: str | None = None
    api_url: str | None = None  # GitHub's REST API

    @property
    def is_oidc(self) -> bool:
        return self.discovery_url is not None


def any_configured(settings: Any) -> bool:
    return settings.oauth_provider != "none"


def spec(settings: Any) -> ProviderSpec | None:
    """The configured provider (None: no single sign-on). Assumes `problem(settings)` is None."""
    name = settings.oauth_provider
    if name == "none":
        return None
    label = settings.oauth_label or LABELS[name]
    if name == "oidc" and not settings.oauth_label:
        label = urlsplit(settings.oauth_discovery_url).hostname or label  # "Continue with sso.example.com"
    base = (settings.oauth_base_url or "").rstrip("/")
    extra = tuple(settings.oauth_scopes)
    if name == "github":
        base = base or GITHUB_URL
        return ProviderSpec(name, label, _scopes(GITHUB_SCOPES, extra), authorize_url=f"{base}/login/oauth/authorize",
                            token_url=f"{base}/login/oauth/access_token", api_url=github_api_url(base))
    if name == "google":
        discovery = GOOGLE_DISCOVERY
    elif name == "gitlab":
        discovery = (base or GITLAB_URL) + DISCOVERY  # GitLab's userinfo lists the user's groups
    else:
        discovery = settings.oauth_discovery_url or base + DISCOVERY
    return ProviderSpec(name, label, _scopes(OIDC_SCOPES, extra), groups_claim=settings.oauth_groups_claim,
                        discovery_url=discovery)


def github_api_url(base: str) -> str:
    """github.com → api.github.com; GHE.com (data residency) → api.<host>; GitHub Enterprise Server → /api/v3.
    With a trailing slash, so `user/emails` joins under it."""
    host = urlsplit(base).hostname or ""
    if host == "github.com":
        return "https://api.github.com/"
    if host.endswith(".ghe.com"):
        return f"https://api.{host}/"
    return f"{base}/api/v3/"


def _scopes(usual: Iterable[str], extra: Iterable[str]) -> tuple[str, ...]:
    scopes = list(usual)
    scopes += [scope for scope in extra if scope not in scopes]
    return tuple(scopes)


def problem(settings: Any) -> str | None:
    """Why the OAuth settings cannot work (or would let anyone in), or None."""
    name = settings.oauth_provider
    if name == "none":
        return None
    flag = f"--oauth-provider {name}"
    if not settings.oauth_client_id or not settings.oauth_client_secret:
        return f"{flag} needs --oauth-client-id and --oauth-client-secret (from the OAuth app you registered)"
    if name == "oidc" and not settings.oauth_discovery_url:
        return f"{flag} needs --oauth-discovery-url (https://…/.well-known/openid-configuration)"
    if name == "okta" and not (settings.oauth_discovery_url or settings.oauth_base_url):
        return f"{flag} needs --oauth-base-url (https://acme.okta.com or …/oauth2/default)"
    if not settings.auth_allow:
        return (f"{flag} with an empty --auth-allow would let every account of that provider log in (any "
                "Google or GitHub user at all): list who may, e.g. --auth-allow domain:example.com, org:acme, "
                "team:acme/sre, group:ops or email:alice@example.com")
    usable = PROVIDER_KINDS.get(name, DEFAULT_KINDS)
    for selector in settings.auth_allow:
        kind = selector.partition(":")[0].strip().lower()
        if kind not in usable:
            return (f"--auth-allow {selector!r}: {LABELS[name]} logins have no {kind}s; use "
                    f"{', '.join(usable)}")
    return None


def selector_problem(text: str) -> str | None:
    """Why `text` is no KIND:VALUE allow-list selector, or None."""
    kind, colon, value = text.partition(":")
    kind, value = kind.strip().lower(), value.strip()
    if not colon or kind not in KINDS or not value:
        return f"{text!r}: a selector is KIND:VALUE with KIND one of {', '.join(KINDS)}"
    if kind == "team" and "/" not in value:
        return f"{text!r}: a team is ORG/TEAM"
    if kind == "domain" and "@" in value.lstrip("@"):
        return f"{text!r}: a domain is the part after @ (domain:example.com)"
    return None


def allow_rules(selectors: Iterable[str]) -> list[Rule]:
    rules = []
    for text in selectors:
        kind, _, value = text.partition(":")
        rules.append(Rule("viewer", kind.strip().lower(), value.strip()))
    return rules


def allowed(identity: Identity, rules: Iterable[Rule]) -> bool:
    """May `identity` log in? Exact, case-insensitive matches; emails count only when the provider verified
    them (anyone can type any address into an unverified profile)."""
    for rule in rules:
        if rule.kind in ("email", "domain") and not identity.email_verified:
            continue
        if rule.matches(identity):
            return True
    return False


def keep_relevant(identity: Identity, rules: Iterable[Rule]) -> Identity:
    """`identity` with only the groups, orgs and teams some rule names: the session cookie must stay under
    the browsers' 4 kB, and a member of 300 groups would not. (A rule added later applies at the next login.)"""
    named: dict[str, set[str]] = {"group": set(), "org": set(), "team": set()}
    for rule in rules:
        if rule.kind in named:
            named[rule.kind].add(rule.value.lower())
    return Identity(**{**identity.__dict__,
                       "groups": tuple(g for g in identity.groups if g.lower() in named["group"]),
                       "orgs": tuple(o for o in identity.orgs if o.lower() in named["org"]),
                       "teams": tuple(t for t in identity.teams if t.lower() in named["team"])})
