"""Single sign-on end to end: a real OpenID provider process (oidc-provider-mock), a real `webui serve`, and
a browser-like client (requests.Session: follows redirects, keeps cookies) through the authorization-code
flow. The provider knows the client by its exact redirect URI, so a wrong callback URL (a lost prefix)
fails at the provider."""
from __future__ import annotations

import html
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

from tests.support.processes import LoggedProcess, WebuiProcess
from tests.support.services import free_port
from tests.support.waiting import wait_for

requests = pytest.importorskip("requests", reason="requests is a dependency of the OAuth login (pip install .)")
if importlib.util.find_spec("oidc_provider_mock") is None:  # it runs as its own process: never imported here
    if os.environ.get("CI"):  # CI must run every test: a missing provider is a failure there, not a skip
        pytest.fail("oidc-provider-mock is not installed (CI is set)", pytrace=False)
    pytest.skip("oidc-provider-mock, the OIDC provider these tests run, is not installed: pip install '.[test]'",
                allow_module_level=True)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

USERS = {
    "alice": {"email": "alice@example.com", "email_verified": True, "preferred_username": "alice"},
    "bob": {"email": "bob@example.com", "email_verified": True, "preferred_username": "bob"},
    "mallory": {"email": "mallory@example.com.evil.org", "email_verified": True},
    "unverified": {"email": "eve@example.com", "email_verified": False},
}


@dataclass
class Provider:
    url: str

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def register(self, redirect_uri: str) -> tuple[str, str]:
        """A client that may use exactly `redirect_uri`: (client id, secret)."""
        answer = requests.post(f"{self.url}/oauth2/clients", json={"redirect_uris": [redirect_uri]}, timeout=5)
        answer.raise_for_status()
        return answer.json()["client_id"], answer.json()["client_secret"]


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[Provider]:
    port = free_port()
    process = LoggedProcess([sys.executable, "-m", "oidc_provider_mock", "--port", str(port),
                             "--require-registration", "true", "--require-nonce", "true"],
                            tmp_path / "oidc-provider.log")
    provider = Provider(f"http://127.0.0.1:{port}")

    def answers() -> bool:
        process.assert_alive("starting the OIDC provider")
        try:
            return requests.get(provider.discovery_url, timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(answers, timeout=20, interval=0.1, message="oidc-provider-mock never answered")
        for sub, claims in USERS.items():
            requests.put(f"{provider.url}/users/{sub}", json=claims, timeout=5).raise_for_status()
        yield provider
    finally:
        process.stop(grace=5)
        print(f"---- oidc-provider-mock log:\n{process.log_tail()}")


@pytest.fixture
def sso_server(provider: Provider, redis_db: str, database_url: str,
               run_webui: Callable[..., WebuiProcess]) -> Callable[..., WebuiProcess]:
    """Factory: `webui serve` with the provider as `--oauth-provider oidc`, under `prefix` if given."""

    def start(prefix: str = "") -> WebuiProcess:
        port = free_port()
        client_id, secret = provider.register(f"http://127.0.0.1:{port}{prefix}/login/oauth/callback")
        args = ["--broker", redis_db, "--database", database_url, "--port", str(port), "--no-enable-events",
                "--oauth-provider", "oidc", "--oauth-discovery-url", provider.discovery_url,
                "--oauth-client-id", client_id, "--auth-allow", "domain:example.com",
                "--roles", "admin=email:alice@example.com", "--default-role", "viewer"]
        if prefix:
            args += ["--url-prefix", prefix]
        server = run_webui("serve", *args, env={"WEBUI_OAUTH_CLIENT_SECRET": secret})
        server.wait_http(f"{prefix}/login", 200, timeout=30)
        return server

    return start


def browser() -> requests.Session:
    session = requests.Session()
    session.headers["Accept"] = "text/html"
    return session


def to_provider(client: requests.Session, server: WebuiProcess, page: str = "/tasks") -> requests.Response:
    """Open a protected page logged out, then follow the login page's single sign-on button to the provider's
    consent form."""
    login = client.get(server.url + page, timeout=10)
    assert login.status_code == 200 and "/login" in login.url
    button = re.search(r'class="button sso-button" href="([^"]+)">Continue with 127\.0\.0\.1<', login.text)
    assert button, login.text
    consent = client.get(server.url + html.unescape(button.group(1)), timeout=10)
    assert consent.status_code == 200 and "Authorize Client" in consent.text, consent.text
    return consent


def log_in(client: requests.Session, server: WebuiProcess, sub: str, page: str = "/tasks") -> requests.Response:
    consent = to_provider(client, server, page)
    return client.post(consent.url, data={"sub": sub}, timeout=10)  # the provider redirects to our callback


def top_bar(page: requests.Response) -> tuple[str, str]:
    name = re.search(r'<span class="user-name"[^>]*>([^<]*)</span>', page.text)
    role = re.search(r'<span class="user-role">([^<]*)</span>', page.text)
    assert name and role, page.text
    return name.group(1), role.group(1)


def login_error(page: requests.Response) -> str:
    found = re.search(r'id="login-error">([^<]*)<', page.text)
    assert found, page.text
    return html.unescape(found.group(1))


def test_an_allowed_user_logs_in_with_their_role_and_out_again(sso_server) -> None:
    server = sso_server()
    client = browser()

    page = log_in(client, server, "alice")

    assert page.status_code == 200 and urlsplit(page.url).path == "/tasks"  # back where she was going
    assert top_bar(page) == ("alice@example.com", "admin")
    assert "Log out" in page.text
    audit = client.get(server.url + "/admin/audit", timeout=10)
    assert audit.status_code == 200 and "alice@example.com" in audit.text and "result-ok" in audit.text

    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    out = client.post(server.url + "/logout", data={"csrf_token": csrf.group(1)}, timeout=10)
    assert out.status_code == 200 and "/login" in out.url
    after = client.get(server.url + "/tasks", timeout=10)
    assert "/login" in after.url and "user-role" not in after.text


def test_someone_else_in_the_domain_gets_the_default_role(sso_server) -> None:
    server = sso_server()

    page = log_in(browser(), server, "bob", page="/workers")

    assert urlsplit(page.url).path == "/workers"
    assert top_bar(page) == ("bob@example.com", "viewer")


@pytest.mark.parametrize("sub, why", [
    ("mallory", "mallory@example.com.evil.org may not log in here"),  # not a suffix match (CVE-2022-30034)
    ("unverified", "eve@example.com may not log in here (its email address is not verified"),
])
def test_a_user_outside_the_allow_list_is_refused_and_audited(sso_server, sub, why) -> None:
    server = sso_server()
    client = browser()

    refused = log_in(client, server, sub)

    assert refused.status_code == 403 and why in login_error(refused)
    assert "user-role" not in refused.text
    assert "/login" in client.get(server.url + "/tasks", timeout=10).url  # no session came of it
    admin = browser()
    log_in(admin, server, "alice")
    audit = admin.get(server.url + "/admin/audit", timeout=10).text
    assert USERS[sub]["email"] in audit and "result-refused" in audit and "not on the allow-list" in audit


def test_a_tampered_state_is_refused(sso_server) -> None:
    server = sso_server()
    client = browser()
    consent = to_provider(client, server)
    redirect = client.post(consent.url, data={"sub": "alice"}, timeout=10, allow_redirects=False)
    callback = urlsplit(redirect.headers["Location"])
    query = {key: values[0] for key, values in parse_qs(callback.query).items()}
    assert query["state"] and query["code"]

    forged = client.get(urlunsplit(callback._replace(query=urlencode({**query, "state": query["state"] + "x"}))),
                        timeout=10)

    assert forged.status_code == 403 and "state was altered" in login_error(forged)
    assert "/login" in client.get(server.url + "/tasks", timeout=10).url


def test_a_code_replayed_in_another_browser_is_refused(sso_server) -> None:
    """Login CSRF: an attacker's own code and state, planted in the victim's browser, match no login the
    victim started."""
    server = sso_server()
    attacker = browser()
    consent = to_provider(attacker, server)
    redirect = attacker.post(consent.url, data={"sub": "bob"}, timeout=10, allow_redirects=False)

    victim = browser()
    planted = victim.get(redirect.headers["Location"], timeout=10)

    assert planted.status_code == 403 and "does not match one started in this browser" in login_error(planted)


def test_denied_consent_shows_the_providers_answer(sso_server) -> None:
    server = sso_server()
    client = browser()
    consent = to_provider(client, server)

    denied = client.post(consent.url, data={"action": "deny"}, timeout=10)

    assert denied.status_code == 401 and "did not log you in: access_denied" in login_error(denied)


def test_the_flow_works_under_a_url_prefix(sso_server) -> None:
    server = sso_server("/celery")
    client = browser()

    page = log_in(client, server, "alice", page="/celery/tasks")

    assert page.status_code == 200 and urlsplit(page.url).path == "/celery/tasks"
    assert top_bar(page) == ("alice@example.com", "admin")
    wait_for(lambda: client.get(server.url + "/celery/admin/audit", timeout=10).status_code == 200, timeout=5,
             message="the admin page under the prefix never answered")


def test_an_unreachable_provider_shows_the_login_page_not_a_500(redis_db, database_url, run_webui) -> None:
    closed = f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--no-enable-events",
                       "--oauth-provider", "oidc", "--oauth-discovery-url", closed, "--oauth-client-id", "id",
                       "--auth-allow", "domain:example.com", env={"WEBUI_OAUTH_CLIENT_SECRET": "secret"})
    server.wait_http("/login", 200, timeout=30)

    page = browser().get(server.url + "/login/oauth?next=/tasks", timeout=20)

    assert page.status_code == 401 and "Could not reach 127.0.0.1 to start the login" in login_error(page)


def test_serve_refuses_a_provider_without_an_allow_list(redis_db, database_url, run_webui) -> None:
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--oauth-provider", "google",
                       "--oauth-client-id", "id", env={"WEBUI_OAUTH_CLIENT_SECRET": "secret"})

    assert server.wait(timeout=30) == 2
    assert "empty --auth-allow would let every account of that provider log in" in server.log_text()
