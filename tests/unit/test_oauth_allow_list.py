"""Who may log in through the OAuth provider: exact, case-insensitive selectors; verified emails only."""
from __future__ import annotations

import pytest

from webui.auth.identity import Identity
from webui.auth.oauth_settings import allow_rules, allowed, keep_relevant, selector_problem


def alice(email: str = "alice@example.com", verified: bool = True, **kwargs) -> Identity:
    return Identity("alice", "oidc", email=email, email_verified=verified, **kwargs)


@pytest.mark.parametrize("selector, identity", [
    ("domain:example.com", alice()),
    ("domain:EXAMPLE.com", alice("Alice@Example.COM")),
    ("domain:@example.com", alice()),
    ("email:alice@example.com", alice("ALICE@example.com")),
    ("user:Alice", alice(verified=False)),
    ("group:ops", alice(groups=("devs", "Ops"))),
    ("group:acme/sre", alice(groups=("acme", "acme/sre"))),
    ("org:acme", alice(orgs=("Acme",))),
    ("team:acme/sre", alice(teams=("acme/SRE",))),
])
def test_it_lets_in_whom_a_selector_names(selector, identity) -> None:
    assert allowed(identity, allow_rules([selector]))


@pytest.mark.parametrize("selector, identity", [
    # Flower's CVE-2022-30034: an unanchored regex let these through.
    ("domain:example.com", alice("mallory@example.com.evil.org")),
    ("domain:example.com", alice("mallory@evilexample.com")),
    ("domain:example.com", alice("mallory@sub.example.com")),
    ("email:alice@example.com", alice("alice@example.com.evil")),
    ("email:alice@example.com", alice("xalice@example.com")),
    ("group:ops", alice(groups=("ops-admins", "devops"))),
    ("group:acme", alice(groups=("acme/sre",))),
    ("org:acme", alice(orgs=("acme-corp",))),
    ("team:acme/sre", alice(teams=("acme/sre-oncall", "other/sre"))),
    ("user:alice", Identity("alice2", "github")),
])
def test_it_matches_whole_values_only(selector, identity) -> None:
    assert not allowed(identity, allow_rules([selector]))


@pytest.mark.parametrize("selector", ["domain:example.com", "email:alice@example.com"])
def test_an_unverified_email_does_not_count(selector) -> None:
    assert not allowed(alice(verified=False), allow_rules([selector]))


def test_any_one_selector_is_enough_and_none_is_nothing() -> None:
    rules = allow_rules(["email:bob@example.com", "org:acme"])

    assert allowed(alice(orgs=("acme",)), rules)
    assert not allowed(alice(), rules)
    assert not allowed(alice(), [])


@pytest.mark.parametrize("text", ["example.com", "domain:", "regex:.*", "team:sre", "domain:alice@example.com"])
def test_it_rejects_malformed_selectors(text) -> None:
    assert selector_problem(text)


def test_the_session_keeps_only_the_groups_rules_name() -> None:
    identity = alice(groups=tuple(f"g{i}" for i in range(300)) + ("Ops",), orgs=("acme", "other"),
                     teams=("acme/sre", "acme/web"))

    kept = keep_relevant(identity, allow_rules(["group:ops", "org:acme", "team:acme/sre"]))

    assert (kept.groups, kept.orgs, kept.teams) == (("Ops",), ("acme",), ("acme/sre",))
    assert kept.email == identity.email and kept.email_verified
