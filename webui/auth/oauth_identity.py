"""What a provider says about a user, as an Identity (pure: plain dicts in, no I/O).

Only what the provider vouches for counts: `email_verified` comes from the provider (the OIDC claim, or
GitHub's verified flag on the primary address), never assumed.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from webui.auth.identity import Identity

MAX_ITEMS = 1000  # of groups, orgs or teams read from one answer


def from_oidc(provider: str, claims: Mapping[str, Any], groups_claim: str = "groups") -> Identity:
    """Google, GitLab, Okta and any OpenID Connect provider: the (validated) ID token's claims merged with
    the userinfo answer. GitLab puts the user's groups (full paths, e.g. `acme/sre`) in userinfo `groups`."""
    email = _text(claims.get("email"))
    username = (_text(claims.get("preferred_username")) or _text(claims.get("nickname")) or email
                or _text(claims.get("sub")) or "")
    return Identity(username=username, provider=provider, email=email,
                    email_verified=_true(claims.get("email_verified")) and email is not None,
                    groups=_strings(claims.get(groups_claim)))


def from_github(provider: str, user: Mapping[str, Any], emails: Iterable[Any], orgs: Iterable[Any],
                teams: Iterable[Any]) -> Identity:
    """GitHub: /user, /user/emails (the primary address counts as verified only if GitHub says so),
    /user/orgs and /user/teams (as `org/team`, by slug)."""
    email, verified = _text(user.get("email")), False
    for entry in emails:
        if isinstance(entry, Mapping) and entry.get("primary") and _text(entry.get("email")):
            email, verified = _text(entry.get("email")), entry.get("verified") is True
            break
    org_names = [o.get("login") for o in orgs if isinstance(o, Mapping)]
    team_names = []
    for team in teams:
        if not isinstance(team, Mapping) or not isinstance(team.get("organization"), Mapping):
            continue
        org, slug = _text(team["organization"].get("login")), _text(team.get("slug"))
        if org and slug:
            team_names.append(f"{org}/{slug}")
            org_names.append(org)  # a team's members belong to its org
    return Identity(username=_text(user.get("login")) or "", provider=provider, email=email,
                    email_verified=verified, orgs=_strings(org_names), teams=_strings(team_names))


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _true(value: Any) -> bool:
    # Some providers (AWS Cognito) send the claim as the string "true".
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return ()
    seen: dict[str, None] = {}
    for item in value[:MAX_ITEMS]:
        if isinstance(item, str) and item.strip():
            seen.setdefault(item.strip(), None)
    return tuple(seen)
