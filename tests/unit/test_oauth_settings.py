"""Which provider the settings describe, and the settings that must refuse to start."""
from __future__ import annotations

import pytest

from webui.auth import exposure_problem, login_configured
from webui.auth.oauth_settings import problem, spec
from webui.settings import SettingsError, default_settings

CLIENT = {"oauth_client_id": "id", "oauth_client_secret": "secret", "auth_allow": ("domain:example.com",)}


def test_no_provider_is_no_single_sign_on() -> None:
    settings = default_settings()

    assert spec(settings) is None and problem(settings) is None and not login_configured(settings)


def test_an_empty_allow_list_refuses_to_start() -> None:
    settings = default_settings(oauth_provider="google", **{**CLIENT, "auth_allow": ()})

    assert "empty --auth-allow would let every account" in (problem(settings) or "")
    assert exposure_problem(settings) == problem(settings)  # `webui serve` says it and exits 2


@pytest.mark.parametrize("changes, needle", [
    ({"oauth_provider": "github", "oauth_client_secret": ""}, "needs --oauth-client-id and"),
    ({"oauth_provider": "oidc"}, "needs --oauth-discovery-url"),
    ({"oauth_provider": "okta"}, "needs --oauth-base-url"),
    ({"oauth_provider": "github", "auth_allow": ("group:ops",)}, "GitHub logins have no groups"),
    ({"oauth_provider": "google", "auth_allow": ("org:acme",)}, "Google logins have no orgs"),
])
def test_settings_that_cannot_work_are_refused(changes, needle) -> None:
    assert needle in (problem(default_settings(**{**CLIENT, **changes})) or "")


def test_a_malformed_selector_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="KIND:VALUE"):
        default_settings(auth_allow=("example.com",))


def test_github_and_github_enterprise_endpoints() -> None:
    github = spec(default_settings(oauth_provider="github", **CLIENT))
    server = spec(default_settings(oauth_provider="github", oauth_base_url="https://github.example.com/", **CLIENT))
    cloud = spec(default_settings(oauth_provider="github", oauth_base_url="https://acme.ghe.com", **CLIENT))

    assert github and github.authorize_url == "https://github.com/login/oauth/authorize"
    assert github.api_url == "https://api.github.com/" and "read:org" in github.scopes and not github.is_oidc
    assert server and server.token_url == "https://github.example.com/login/oauth/access_token"
    assert server.api_url == "https://github.example.com/api/v3/"
    assert cloud and cloud.api_url == "https://api.acme.ghe.com/"


def test_oidc_providers_are_found_by_discovery() -> None:
    def discovery(**changes: object) -> str | None:
        found = spec(default_settings(**{**CLIENT, **changes}))
        assert found and found.is_oidc and found.scopes[:3] == ("openid", "email", "profile")
        return found.discovery_url

    assert discovery(oauth_provider="google") == "https://accounts.google.com/.well-known/openid-configuration"
    assert discovery(oauth_provider="gitlab") == "https://gitlab.com/.well-known/openid-configuration"
    assert discovery(oauth_provider="gitlab", oauth_base_url="https://git.example.com/") == \
        "https://git.example.com/.well-known/openid-configuration"
    assert discovery(oauth_provider="okta", oauth_base_url="https://acme.okta.com/oauth2/default") == \
        "https://acme.okta.com/oauth2/default/.well-known/openid-configuration"
    assert discovery(oauth_provider="oidc", oauth_discovery_url="https://sso.example.com/d") == \
        "https://sso.example.com/d"


def test_labels_and_extra_scopes() -> None:
    oidc = spec(default_settings(oauth_provider="oidc", oauth_discovery_url="https://sso.example.com/d",
                                 oauth_scopes=("groups", "openid"), **CLIENT))
    named = spec(default_settings(oauth_provider="okta", oauth_base_url="https://acme.okta.com",
                                  oauth_label="Acme SSO", **CLIENT))

    assert oidc and oidc.label == "sso.example.com" and oidc.scopes == ("openid", "email", "profile", "groups")
    assert named and named.label == "Acme SSO"
