"""Logins, roles, API tokens, CSRF and the audit log against a real `webui serve` with password users.

Personas: alice is an admin (a --roles rule), oscar an operator, vic gets the default role (viewer).
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests
from werkzeug.routing import IntegerConverter

from tests.support.processes import REPO_ROOT, child_env
from webui.app import create_app
from webui.auth.passwords import hash_password
from webui.settings import default_settings

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PASSWORD = "correct horse battery"
HASH = hash_password(PASSWORD)
USERS = f"alice:{HASH},oscar:{HASH},vic:{HASH}"
ROLES = "admin=user:alice,operator=user:oscar"
PUBLIC = {"/healthcheck", "/login"}
# Scraped or probed, never browsed: a browser gets the 401 too, not the login page.
API_ONLY = {"/metrics", "/health/workers", "/health/queue/x", "/health/beat"}


def serve_with_logins(run_webui, worker, database_url, *extra):
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval",
                       "0.1", "--no-enable-events", "--basic-auth", USERS, "--roles", ROLES, *extra)
    server.wait_http("/healthcheck", 200, timeout=30)
    return server


@pytest.fixture
def server(worker, database_url, run_webui):
    return serve_with_logins(run_webui, worker, database_url, "--login-max-failures", "4")


def browser(server) -> requests.Session:
    """A client that behaves like a browser on this site: cookies, and Origin on every POST."""
    client = requests.Session()
    client.headers.update({"Accept": "text/html", "Origin": server.url})
    return client


def log_in(server, user: str, password: str = PASSWORD) -> requests.Session:
    client = browser(server)
    response = client.post(f"{server.url}/login", data={"username": user, "password": password, "next": "/tasks"},
                           allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"].endswith("/tasks"), response.text[:300]
    return client


def csrf_token(client: requests.Session, url: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).text)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def get_routes() -> list[str]:
    app = create_app(default_settings(database="sqlite:///:memory:"), start_collector=False)
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in ("static", "live.socket"):  # the socket: its own test
            continue
        # A number where the route takes one: "x" would not match the route at all (404 before any gate).
        numeric = {name for name, conv in rule._converters.items() if isinstance(conv, IntegerConverter)}
        values = {name: "csv" if name == "fmt" else "1" if name in numeric else "x" for name in rule.arguments}
        paths.append(re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m, v=values: v[m.group(1)], rule.rule))
    return paths


@SQLITE_ONLY
def test_an_anonymous_crawl_reaches_only_the_public_routes(server):
    routes = get_routes()
    assert "/tasks" in routes and "/admin/audit" in routes
    for path in routes:
        page = requests.get(server.url + path, headers={"Accept": "text/html"}, allow_redirects=False)
        api = requests.get(server.url + path, headers={"Accept": "application/json"}, allow_redirects=False)
        if path in PUBLIC:
            assert page.status_code in (200, 503), path
            continue
        if path in API_ONLY or path.startswith("/api/"):
            assert page.status_code == 401, path
        else:
            assert page.status_code == 302 and "/login?next=" in page.headers["Location"], (path, page.status_code)
        assert api.status_code == 401 and api.json()["error"], (path, api.status_code)
        assert api.headers["WWW-Authenticate"].startswith("Basic")
    static = requests.get(server.url + "/static/css/webui.css")
    assert static.status_code == 200


@SQLITE_ONLY
def test_the_login_form_lets_the_right_password_in_and_keeps_the_wrong_one_out(server):
    wrong = browser(server).post(f"{server.url}/login", data={"username": "alice", "password": "nope"})
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text

    client = log_in(server, "alice")
    page = client.get(f"{server.url}/tasks")
    assert page.status_code == 200
    assert re.search(r'class="user-name"[^>]*>alice<', page.text) and 'class="user-role">admin<' in page.text
    assert "session" in "".join(client.cookies.keys())
    cookie = next(c for c in client.cookies if c.name == "webui_session")
    assert cookie.has_nonstandard_attr("HttpOnly")


@SQLITE_ONLY
def test_repeated_failures_are_throttled_even_for_the_right_password(server):
    for _ in range(4):
        assert browser(server).post(f"{server.url}/login", data={"username": "vic", "password": "x"}).status_code == 401
    throttled = browser(server).post(f"{server.url}/login", data={"username": "vic", "password": PASSWORD})
    assert throttled.status_code == 429 and "Too many failed logins" in throttled.text
    header = requests.get(f"{server.url}/tasks", auth=("vic", PASSWORD))
    assert header.status_code == 429 and int(header.headers["Retry-After"]) > 0


@SQLITE_ONLY
def test_scripts_use_a_basic_header_without_a_session(server):
    assert requests.get(f"{server.url}/tasks", auth=("oscar", PASSWORD)).status_code == 200
    wrong = requests.get(f"{server.url}/tasks", auth=("oscar", "bad"), headers={"Accept": "application/json"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "Wrong user name or password."


@SQLITE_ONLY
def test_each_role_reaches_only_its_controls_and_the_server_refuses_the_rest(server):
    viewer, admin = log_in(server, "vic"), log_in(server, "alice")

    assert viewer.get(f"{server.url}/admin").status_code == 403
    assert 'href="/admin"' not in viewer.get(f"{server.url}/tasks").text, "admins' pages are not offered"
    assert admin.get(f"{server.url}/admin").status_code == 200
    token = csrf_token(viewer, f"{server.url}/tasks")
    refused = viewer.post(f"{server.url}/workers/forget", data={"hostname": "gone@nowhere", "csrf_token": token})
    assert refused.status_code == 403 and "needs the admin role; yours is viewer" in refused.text
    token = csrf_token(admin, f"{server.url}/tasks")
    allowed = admin.post(f"{server.url}/workers/forget", data={"hostname": "gone@nowhere", "csrf_token": token})
    assert allowed.status_code == 404, "past the role check: the worker is unknown"

    audit = admin.get(f"{server.url}/admin/audit").text
    assert "worker-forget" in audit and "refused" in audit and "vic" in audit


@SQLITE_ONLY
def test_a_session_post_needs_its_csrf_token_and_this_sites_origin(server):
    admin = log_in(server, "alice")
    token = csrf_token(admin, f"{server.url}/admin")

    missing = admin.post(f"{server.url}/admin/tokens", data={"name": "x", "role": "viewer"})
    assert missing.status_code == 403 and "CSRF token" in missing.text
    foreign = admin.post(f"{server.url}/admin/tokens", data={"name": "x", "role": "viewer", "csrf_token": token},
                         headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "evil.example" in foreign.text
    cross = admin.post(f"{server.url}/admin/tokens", data={"name": "x", "role": "viewer", "csrf_token": token},
                       headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    ok = admin.post(f"{server.url}/admin/tokens", data={"name": "x", "role": "viewer", "csrf_token": token})
    assert ok.status_code == 200 and 'id="new-token-value"' in ok.text


@SQLITE_ONLY
def test_an_api_token_carries_its_role_until_it_is_revoked(server):
    admin = log_in(server, "alice")
    token = csrf_token(admin, f"{server.url}/admin")
    created = admin.post(f"{server.url}/admin/tokens", data={"name": "prometheus", "role": "viewer",
                                                             "csrf_token": token})
    secret = re.search(r'id="new-token-value">(cwu_[^<]+)<', created.text).group(1)
    assert secret not in admin.get(f"{server.url}/admin").text, "a token is shown once only"

    bearer = {"Authorization": f"Bearer {secret}", "Accept": "application/json"}
    assert requests.get(f"{server.url}/tasks", headers=bearer).status_code == 200
    assert requests.get(f"{server.url}/admin", headers=bearer).status_code == 403
    listing = admin.get(f"{server.url}/admin").text
    token_id = re.search(r'id="token-(\d+)"', listing).group(1)
    row = listing.split(f'id="token-{token_id}"')[1].split("</tr>")[0]
    assert row.count('<time class="ts"') == 2, "created and last used both show a time once the token is used"

    revoked = admin.post(f"{server.url}/admin/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 200
    after = requests.get(f"{server.url}/tasks", headers=bearer)
    assert after.status_code == 401 and "unknown or revoked" in after.json()["error"]
    audit = admin.get(f"{server.url}/admin/audit").text
    assert "token-create" in audit and "token-revoke" in audit and "prometheus" in audit


@SQLITE_ONLY
def test_logout_ends_the_session(server):
    client = log_in(server, "oscar")
    token = csrf_token(client, f"{server.url}/tasks")
    out = client.post(f"{server.url}/logout", data={"csrf_token": token}, allow_redirects=False)
    assert out.status_code == 302 and out.headers["Location"].endswith("/login")
    assert client.get(f"{server.url}/tasks", allow_redirects=False).status_code == 302


@SQLITE_ONLY
def test_the_live_socket_needs_a_login_too(server):
    handshake = {"Origin": server.url, "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    anonymous = requests.get(f"{server.url}/ws/live", headers=handshake, allow_redirects=False)
    assert anonymous.status_code == 401
    client = log_in(server, "vic")
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies)
    upgraded = requests.get(f"{server.url}/ws/live", headers={**handshake, "Cookie": cookie},
                            allow_redirects=False, stream=True)
    try:
        assert upgraded.status_code == 101
    finally:
        upgraded.close()


@SQLITE_ONLY
def test_sessions_survive_a_restart_because_the_key_is_kept_in_the_database(worker, database_url, run_webui):
    first = serve_with_logins(run_webui, worker, database_url)
    client = log_in(first, "vic")
    first.stop()
    second = serve_with_logins(run_webui, worker, database_url)
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies)
    page = requests.get(f"{second.url}/tasks", headers={"Cookie": cookie}, allow_redirects=False)
    assert page.status_code == 200


@SQLITE_ONLY
def test_read_only_mode_refuses_controls_even_to_admins(worker, database_url, run_webui):
    server = serve_with_logins(run_webui, worker, database_url, "--read-only")
    admin = log_in(server, "alice")
    page = admin.get(f"{server.url}/workers").text
    assert "Read-only" in page
    token = csrf_token(admin, f"{server.url}/admin")
    refused = admin.post(f"{server.url}/workers/forget", data={"hostname": "w@h", "csrf_token": token})
    assert refused.status_code == 403 and "read-only" in refused.text


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webui", *args], cwd=REPO_ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=60)


def test_a_plain_password_in_the_configuration_is_refused_at_start():
    result = run_cli("serve", "--basic-auth", "alice:hunter2", "--database", "sqlite:///:memory:")
    assert result.returncode == 2
    assert "plain passwords are refused" in result.stderr and "hunter2" not in result.stderr


def test_an_open_ui_on_a_public_address_is_refused_unless_insisted_on():
    result = run_cli("serve", "--address", "0.0.0.0", "--database", "sqlite:///:memory:")
    assert result.returncode == 2 and "--insecure-no-auth" in result.stderr


def test_hash_password_prints_a_hash_the_server_accepts():
    result = subprocess.run([sys.executable, "-m", "webui", "hash-password"], input="a long password\n",
                            cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("scrypt:")
    from webui.auth.passwords import verify
    assert verify({"u": result.stdout.strip()}, "u", "a long password")
