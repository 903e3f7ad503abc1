"""The beat controls in Chromium: on the beat page each entry's buttons, those its source can't take disabled
with the reason shown; a run now confirmed, then sent, with the new task linked.

The store is filled as the beat watcher would have filled it (tests.support.beat_store.fill_board); the server
runs without a collector, on the in-memory broker, so "Run now" really sends without a worker to run it.
"""
from __future__ import annotations

import re

import pytest

from tests.browser.conftest import assert_no_console_problems, screenshot
from tests.support.beat_store import fill_board
from webui.beat.controls import IN_CODE

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_the_beat_page_offers_the_controls_each_source_can_take(page, database_url, run_webui):
    ids = fill_board(database_url)
    server = run_webui("serve", "--broker", "memory://", "--database", database_url, "--no-embedded-collector",
                       "--beat-interval", "5")
    server.wait_http("/beat", 200, timeout=30)
    page.goto(f"{server.url}/beat")

    app_entry = page.locator(f"#beat-controls-{ids['on_time']}")  # sync-invoices, from the app's beat_schedule
    assert app_entry.locator("button[data-action=run]").is_enabled()
    for action in ("pause", "skip"):
        assert app_entry.locator(f"button[data-action={action}]").is_disabled()
        assert app_entry.locator(f"button[data-action={action}]").get_attribute("title") == IN_CODE
    assert IN_CODE in page.locator("#beat-schedules ~ p, section[aria-labelledby=beat-schedules] p.small").inner_text()
    paused = page.locator(f"#beat-controls-{ids['disabled']}")  # paused-export, django-celery-beat, disabled
    assert paused.locator("button[data-action=resume]").is_enabled()
    assert paused.locator("button[data-action=skip]").get_attribute("title") == "paused: there is no next run to skip"
    screenshot(page, "beat-controls")

    # The entry's page writes the reason out under its buttons.
    page.goto(f"{server.url}/beat/{ids['on_time']}")
    assert page.locator(".beat-control-off").inner_text() == f"Pause, skip the next run — {IN_CODE}."
    screenshot(page, "beat-entry-controls")
    page.goto(f"{server.url}/beat")

    app_entry.locator("button[data-action=run]").click()
    page.wait_for_url(re.compile(r"/controls/beat/\d+/run$"))
    assert "Send tests.celeryapp.echo now with this entry's arguments and options on queue billing" in \
        page.locator("#confirm-text").inner_text()
    screenshot(page, "beat-controls-confirm")
    page.locator("#confirm-button").click()
    assert page.locator("#control-result .result-line").inner_text() == "Sent."
    link = page.locator("#new-task a")
    assert re.fullmatch(r"/task/[0-9a-f-]{36}", link.get_attribute("href") or "")
    screenshot(page, "beat-controls-sent")
    page.locator(".crumbs a").click()
    page.wait_for_url(f"{server.url}/beat")
    assert_no_console_problems(page)
