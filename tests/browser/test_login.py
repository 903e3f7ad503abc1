"""Logging in with a password in Chromium, the admin pages, and what a viewer is not offered; light and dark."""
from __future__ import annotations

import pytest

from tests.browser.conftest import PHONE_VIEWPORT, assert_no_console_problems, screenshot
from webui.auth.passwords import hash_password

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PASSWORD = "correct horse battery"


@pytest.fixture
def login_server(worker, database_url, run_webui):
    hashed = hash_password(PASSWORD)
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--no-enable-events",
                       "--basic-auth", f"alice:{hashed},vic:{hashed}", "--roles", "admin=user:alice")
    server.wait_http("/healthcheck", 200, timeout=30)
    return server


def log_in(page, server, user: str, password: str = PASSWORD) -> None:
    page.goto(f"{server.url}/tasks")
    assert "/login" in page.url, "an anonymous visitor is sent to the login page"
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/tasks")


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_an_admin_logs_in_creates_a_token_and_reads_the_audit_log(page, login_server, color_scheme):
    page.goto(f"{login_server.url}/login")
    screenshot(page, f"login-{color_scheme}")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.locator("#login-error").inner_text()

    log_in(page, login_server, "alice")
    assert page.locator(".user-box .user-role").inner_text() == "admin"
    page.click("nav >> text=Admin")
    page.fill("input[name=name]", "prometheus")
    page.select_option("select[name=role]", "viewer")
    page.click("text=Create token")
    assert page.locator("#new-token-value").inner_text().startswith("cwu_")
    screenshot(page, f"admin-tokens-{color_scheme}")
    page.click("text=Audit log")
    page.wait_for_url("**/admin/audit")
    page.locator("text=token-create").first.wait_for(timeout=10000)
    screenshot(page, f"admin-audit-{color_scheme}")
    page.click("button.logout")
    page.wait_for_url("**/login")
    assert_no_console_problems(page)


def test_a_viewer_is_not_offered_the_admin_pages(page, login_server):
    log_in(page, login_server, "vic")
    assert page.locator(".user-box .user-role").inner_text() == "viewer"
    assert page.locator("nav >> text=Admin").count() == 0
    response = page.goto(f"{login_server.url}/admin")
    assert response.status == 403
    assert "needs the admin role" in page.locator("#error-message").inner_text()


def test_the_login_page_fits_a_phone(page, login_server):
    page.set_viewport_size(PHONE_VIEWPORT)
    page.goto(f"{login_server.url}/login")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    screenshot(page, "login-phone", full_page=False)
