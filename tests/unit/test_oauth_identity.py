"""Each provider's answer about a user, as an Identity: what the provider vouches for, nothing assumed."""
from __future__ import annotations

from webui.auth import roles
from webui.auth.oauth_identity import from_github, from_oidc


def test_a_google_id_token() -> None:
    claims = {"iss": "https://accounts.google.com", "sub": "1093", "email": "alice@example.com",
              "email_verified": True, "hd": "example.com", "name": "Alice"}

    identity = from_oidc("google", claims)

    assert (identity.username, identity.provider, identity.email) == ("alice@example.com", "google",
                                                                     "alice@example.com")
    assert identity.email_verified and identity.groups == ()


def test_an_unverified_or_missing_email_is_not_verified() -> None:
    assert not from_oidc("oidc", {"sub": "1", "email": "a@example.com", "email_verified": False}).email_verified
    assert not from_oidc("oidc", {"sub": "1", "email": "a@example.com"}).email_verified
    assert not from_oidc("oidc", {"sub": "1", "email_verified": True}).email_verified
    assert from_oidc("oidc", {"sub": "1", "email": "a@example.com", "email_verified": "true"}).email_verified


def test_gitlab_userinfo_groups_are_full_paths() -> None:
    claims = {"sub": "42", "nickname": "alice", "preferred_username": "alice", "email": "alice@example.com",
              "email_verified": True, "groups": ["acme", "acme/sre", "acme/sre"], "groups_direct": ["acme/sre"]}

    identity = from_oidc("gitlab", claims)

    assert identity.username == "alice"
    assert identity.groups == ("acme", "acme/sre")
    assert roles.Rule("admin", "group", "ACME/SRE").matches(identity)


def test_okta_and_oidc_groups_come_from_the_configured_claim() -> None:
    okta = from_oidc("okta", {"sub": "00u1", "preferred_username": "alice@example.com",
                              "email": "alice@example.com", "email_verified": True,
                              "groups": ["Everyone", "Ops"]})
    keycloak = from_oidc("oidc", {"sub": "f1", "preferred_username": "alice", "roles": "celery-ops",
                                  "groups": ["ignored"]}, groups_claim="roles")

    assert okta.groups == ("Everyone", "Ops") and okta.provider == "okta"
    assert keycloak.groups == ("celery-ops",)


def test_garbage_in_a_groups_claim_is_ignored() -> None:
    identity = from_oidc("oidc", {"sub": "1", "groups": [1, None, {"x": 1}, " ", "ops"]})

    assert identity.groups == ("ops",)
    assert from_oidc("oidc", {"sub": "1", "groups": {"ops": True}}).groups == ()


def test_github_uses_the_primary_verified_address_and_org_slash_team() -> None:
    user = {"login": "alice", "id": 1, "email": "alice@personal.example"}
    emails = [{"email": "alice@personal.example", "primary": False, "verified": True},
              {"email": "alice@example.com", "primary": True, "verified": True}]
    orgs = [{"login": "acme"}, {"login": "oss"}]
    teams = [{"slug": "sre", "name": "SRE team", "organization": {"login": "acme"}},
             {"slug": "web", "organization": {"login": "partner"}}]

    identity = from_github("github", user, emails, orgs, teams)

    assert (identity.username, identity.email, identity.email_verified) == ("alice", "alice@example.com", True)
    assert identity.orgs == ("acme", "oss", "partner")
    assert identity.teams == ("acme/sre", "partner/web")


def test_github_an_unverified_primary_address_is_not_verified() -> None:
    emails = [{"email": "alice@example.com", "primary": True, "verified": False}]

    identity = from_github("github", {"login": "alice", "email": None}, emails, [], [])

    assert identity.email == "alice@example.com" and not identity.email_verified
    assert from_github("github", {"login": "bob", "email": "bob@example.com"}, [], [], []).email_verified is False
