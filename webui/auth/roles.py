"""Roles and the rules that give them: ROLE=KIND:VALUE, matched exactly (never by an unanchored pattern).

viewer reads; operator also revokes, retries and sets rate/time limits; admin also runs worker and pool
operations, forgets workers' history, and manages API tokens and alert rules.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from webui.auth.identity import Identity

ROLES = ("viewer", "operator", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
KINDS = ("user", "email", "domain", "group", "org", "team")


@dataclass(frozen=True)
class Rule:
    role: str
    kind: str
    value: str

    def matches(self, identity: Identity) -> bool:
        value = self.value.lower()
        if self.kind == "user":
            return identity.username.lower() == value
        if self.kind == "email":  # only an address the provider verified: anyone can type any into a profile
            return identity.email_verified and (identity.email or "").lower() == value
        if self.kind == "domain":
            email = (identity.email or "").lower()
            return identity.email_verified and email.rpartition("@")[2] == value.lstrip("@")
        if self.kind == "group":
            return value in {g.lower() for g in identity.groups}
        if self.kind == "org":
            return value in {o.lower() for o in identity.orgs}
        return value in {t.lower() for t in identity.teams}  # team: "org/team"


def rule_problem(text: str) -> str | None:
    role, sep, selector = text.partition("=")
    kind, colon, value = selector.partition(":")
    if not sep or role.strip() not in ROLES:
        return f"{text!r}: a rule is ROLE=KIND:VALUE with ROLE one of {', '.join(ROLES)}"
    if not colon or kind.strip() not in KINDS or not value.strip():
        return f"{text!r}: KIND must be one of {', '.join(KINDS)}, followed by :VALUE"
    if kind.strip() == "team" and "/" not in value:
        return f"{text!r}: a team is ORG/TEAM"
    return None


def parse_rules(texts: Iterable[str]) -> list[Rule]:
    rules = []
    for text in texts:
        role, _, selector = text.partition("=")
        kind, _, value = selector.partition(":")
        rules.append(Rule(role.strip(), kind.strip(), value.strip()))
    return rules


def role_for(identity: Identity, rules: Iterable[Rule], default: str) -> str | None:
    """The highest role a rule gives `identity`; else `default` ("none": None, the identity is refused)."""
    matched = [rule.role for rule in rules if rule.matches(identity)]
    if matched:
        return max(matched, key=RANK.__getitem__)
    return None if default == "none" else default


def at_least(role: str | None, needed: str) -> bool:
    return role is not None and RANK.get(role, 0) >= RANK[needed]
