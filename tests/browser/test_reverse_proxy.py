"""The UI under /celery behind a real nginx (the shipped example config), in Chromium: the overview and tasks
pages load with every script, style and htmx fragment under the prefix (no console or CSP error), and on a
live page the socket connects through nginx ("Live") and brings a new task's events without a reload."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import assert_no_console_problems
from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.nginx import PREFIX, ProxiedWebui, serve_behind_nginx

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def proxied(run_webui, redis_db: str, database_url: str, tmp_path: Path) -> Iterator[ProxiedWebui]:
    yield from serve_behind_nginx(run_webui, redis_db, database_url, tmp_path / "nginx")


def test_pages_and_live_updates_work_under_the_prefix_through_nginx(proxied: ProxiedWebui, page) -> None:
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(proxied.url + "/") else None)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))

    overview = page.goto(proxied.url + "/")
    assert overview is not None and overview.status == 200
    # The overview refreshes itself from /celery/overview/sections: wait for one such fragment.
    with page.expect_response(lambda r: r.url.startswith(f"{proxied.url}/overview/sections"), timeout=15000) as got:
        pass
    assert got.value.status == 200

    page.locator("nav a", has_text="Tasks").click()
    page.wait_for_url(f"{proxied.url}/tasks")
    assert page.locator("h1").first.is_visible()

    page.locator("nav a", has_text="Events").click()
    page.wait_for_url(f"{proxied.url}/events")
    page.locator("#live-toggle[data-state=live]").wait_for(timeout=10000)
    assert page.locator("#live-toggle").inner_text() == "Live"
    # The page's mark rides along (webui.live: what changed between the render and the socket is told first).
    assert sockets and sockets[-1].partition("?since=")[0] == f"ws://127.0.0.1:{proxied.nginx.port}{PREFIX}/ws/live"
    assert sockets[0].partition("?since=")[2], "the first connection hands back the page's live mark"

    # Stored now, announced through the socket: the page's fallback poll only runs while the socket is down.
    with dispatcher(proxied.broker_url, hostname="proxied@test") as d:
        task_id = send_task_lifecycle(d)
    page.locator(f"tr.event-row:has-text('{task_id}')").first.wait_for(timeout=10000)

    assert not outside, f"the browser asked for URLs outside {proxied.url}/: {outside}"
    assert_no_console_problems(page)
