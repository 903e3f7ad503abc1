"""The alerts pages and the config doctor in Chromium: incidents readable at a glance by severity and where they
stand, responding with the buttons, the rule editor swapping a detector's parameters in, channels without
their secrets, maintenance windows; light, dark and on a phone.

The store is filled as the alert runner would have filled it (tests.support.alerts_store), and the server runs
without a collector, so nothing opens, resolves or delivers while the pages are looked at.
"""
from __future__ import annotations

import pytest

from tests.browser.conftest import PHONE_VIEWPORT, assert_no_console_problems, screenshot
from tests.support.alerts_store import HOSTILE, fill_alerts

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def alerts_server(database_url, run_webui):
    ids = fill_alerts(database_url)
    server = run_webui("serve", "--broker", "memory://", "--database", database_url, "--no-embedded-collector")
    server.wait_http("/alerts", 200, timeout=30)
    return server, ids


def colour(locator) -> str:
    return locator.evaluate("el => getComputedStyle(el).backgroundColor + ' ' + getComputedStyle(el).color")


def fits_the_phone(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_the_incidents_page_shows_open_ones_by_severity_then_resolved_ones(page, alerts_server, color_scheme):
    server, ids = alerts_server
    page.goto(f"{server.url}/alerts")
    assert page.locator(".nav a", has_text="Alerts").locator(".nav-badge").inner_text() == "5"
    rows = page.locator("#open-table tbody tr")
    assert rows.count() == 5
    severities = {colour(page.locator(f"#open-table .sev-{s}").first) for s in ("critical", "warning", "info")}
    assert len(severities) == 3, severities
    worker = page.locator(f"#incident-{ids['worker_incident']}")
    assert "acked by oscar" in worker.locator("td.state").inner_text()
    assert "silenced until" in page.locator(f"#incident-{ids['queue_incident']}").inner_text()
    assert page.locator("#resolved-table tbody tr").count() == 6
    assert page.locator("img[src=x]").count() == 0 and HOSTILE in page.locator("td.subject").all_inner_texts()
    # htmx refreshes the board in place
    with page.expect_response(lambda r: "/alerts" in r.url and r.request.headers.get("hx-request"), timeout=15000):
        pass
    page.wait_for_timeout(200)
    assert page.locator("#open-table tbody tr").count() == 5
    screenshot(page, f"alerts-{color_scheme}")
    assert_no_console_problems(page)


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_an_incident_is_acknowledged_and_silenced_with_its_buttons(page, alerts_server, color_scheme):
    server, ids = alerts_server
    page.goto(f"{server.url}/alerts")
    page.locator(f"#incident-{ids['task_incident']} td.subject a").click()
    page.wait_for_url(f"**/alerts/incidents/{ids['task_incident']}")
    assert "lost" in page.locator("#incident-summary").inner_text()
    assert page.locator("#incident-detail dt", has_text="runtime_seconds").is_visible()
    link = page.locator("#subject-link")
    assert link.get_attribute("href") == "/task/5f0c2a9e-8d1b-4c7e-9a43-2b6d8e1f0a77"
    page.locator("#ack-button").click()
    page.wait_for_selector("#alerts-notice")
    assert page.locator("#alerts-notice").inner_text() == "Acknowledged."
    assert "acked by anonymous" in page.locator(".incident-standing").inner_text()
    page.locator("#silence-form button", has_text="1 h").click()
    page.wait_for_selector("#unsilence-form")
    assert page.locator("#alerts-notice").inner_text() == "Silenced for 1 h."
    kinds = page.locator("#incident-timeline .event-kind").all_inner_texts()
    assert [k.lower() for k in kinds] == ["opened", "acked", "silenced"]
    screenshot(page, f"alerts-incident-{color_scheme}")
    page.goto(f"{server.url}/alerts/incidents/{ids['queue_incident']}")
    failed = page.locator("#incident-notifications .delivery-failed")
    assert failed.is_visible() and "535 5.7.8" in page.locator("#incident-notifications td.error-text").inner_text()
    screenshot(page, f"alerts-incident-silenced-{color_scheme}")
    assert_no_console_problems(page)


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_rules_and_the_rule_editor(page, alerts_server, color_scheme):
    server, ids = alerts_server
    page.goto(f"{server.url}/alerts/rules")
    assert page.locator("#rules-table tbody tr").count() == 7
    assert page.locator("#rules-table tr", has_text="Payments stalled").locator(".managed-file").is_visible()
    screenshot(page, f"alerts-rules-{color_scheme}")
    page.goto(f"{server.url}/alerts/rules/{ids['file_rule']}")
    assert "Managed in" in page.locator("#file-managed").inner_text()
    assert page.locator("#edit-rule").count() == 0
    page.goto(f"{server.url}/alerts/rules/{ids['rising_rule']}")
    page.locator("#edit-rule").click()
    page.wait_for_url("**/edit")
    assert page.locator("input[name='param.minutes']").input_value() == "15"
    # another detector: htmx swaps its parameters in
    page.locator("#detector-select").select_option("task_stalled")
    page.wait_for_selector("input[name='param.multiplier']")
    assert page.locator("input[name='param.minutes']").count() == 0
    assert "STARTED for longer than" in page.locator("#detector-description").inner_text()
    # the browser refuses a value out of the parameter's range itself; the server says what else is wrong
    page.locator("input[name='param.multiplier']").fill("0.01")
    page.locator("#save-rule").click()
    assert page.locator("input[name='param.multiplier']").evaluate("el => el.validity.rangeUnderflow")
    page.locator("input[name='param.multiplier']").fill("4")
    page.locator("input[name=name]").fill("Lost tasks")
    page.locator("#save-rule").click()
    page.wait_for_selector("#rule-problems")
    assert "A rule named 'Lost tasks' exists already" in page.locator("#rule-problems").inner_text()
    assert page.locator("#detector-select").input_value() == "task_stalled"
    assert page.locator("input[name='param.multiplier']").input_value() == "4"
    screenshot(page, f"alerts-rule-editor-{color_scheme}")
    page.locator("input[name=name]").fill("Billing stalled")
    page.locator("#save-rule").click()
    page.wait_for_selector("#alerts-notice")
    assert "Stalled task" in page.locator(".facts").first.inner_text()
    assert_no_console_problems(page)


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_channels_show_no_secrets_and_a_test_waits_for_the_delivery_loop(page, alerts_server, color_scheme):
    server, ids = alerts_server
    page.goto(f"{server.url}/alerts/channels")
    assert page.locator("#channels-table tbody tr").count() == 3
    content = page.content()
    assert "SECRET" not in content and "hunter2" not in content
    screenshot(page, f"alerts-channels-{color_scheme}")
    page.goto(f"{server.url}/alerts/channels/{ids['slack']}")
    page.locator("#test-channel").click()
    page.wait_for_selector("#waiting-note")
    assert page.locator("#channel-deliveries-table .delivery-queued").count() == 1
    assert "SECRET" not in page.content()
    screenshot(page, f"alerts-channel-{color_scheme}")
    page.goto(f"{server.url}/alerts/channels/{ids['mail']}/edit")
    assert page.locator("input[name='config.password']").input_value() == ""
    assert "saved" in page.locator("input[name='config.password']").get_attribute("placeholder")
    screenshot(page, f"alerts-channel-editor-{color_scheme}")
    assert_no_console_problems(page)


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_maintenance_windows_and_the_config_doctor(page, alerts_server, color_scheme):
    server, _ids = alerts_server
    page.goto(f"{server.url}/alerts/maintenance")
    assert page.locator("#current-windows tr.window-on", has_text="Deploy 2.4").is_visible()
    page.locator("#window-form input[name=name]").fill("Hotfix")
    page.locator("#window-form input[name=minutes]").fill("20")
    page.locator("#add-window").click()
    page.wait_for_selector("#alerts-notice")
    assert page.locator("#current-windows tr", has_text="Hotfix").is_visible()
    screenshot(page, f"alerts-maintenance-{color_scheme}")
    page.goto(f"{server.url}/broker")
    page.locator("#doctor-link a").click()
    page.wait_for_url("**/doctor")
    assert page.locator("article.advice").count() >= 5
    screenshot(page, f"doctor-{color_scheme}")
    assert_no_console_problems(page)


def test_the_alerts_pages_are_usable_on_a_phone(page, alerts_server):
    server, ids = alerts_server
    page.set_viewport_size(PHONE_VIEWPORT)
    pages = (("/alerts", "alerts-phone"), (f"/alerts/incidents/{ids['worker_incident']}", "alerts-incident-phone"),
             (f"/alerts/incidents/{ids['hostile_incident']}", "alerts-incident-hostile-phone"),
             ("/alerts/rules", "alerts-rules-phone"), ("/alerts/rules/new", "alerts-rule-editor-phone"),
             ("/alerts/channels", "alerts-channels-phone"), ("/alerts/maintenance", "alerts-maintenance-phone"),
             ("/doctor", "doctor-phone"), ("/", "overview-alerts-phone"))
    for path, name in pages:
        page.goto(server.url + path)
        assert fits_the_phone(page), path
        screenshot(page, name, full_page=False)  # what the phone shows first
        screenshot(page, f"{name}-full")
    page.goto(f"{server.url}/alerts")
    row = page.locator(f"#incident-{ids['worker_incident']}")
    box = row.locator(".sev").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE_VIEWPORT["width"]
    assert_no_console_problems(page)
