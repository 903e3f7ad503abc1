"""The UI under /celery behind a real nginx configured by the shipped docker/nginx/celery-webui.conf:
pages, static files, redirects, exports, the health probe and the live WebSocket all work through it, and
forwarded headers a client forges never get past it."""
from __future__ import annotations

import http.client
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import simple_websocket
from werkzeug.security import generate_password_hash

from tests.support.events import dispatcher
from tests.support.nginx import PREFIX, ProxiedWebui, serve_behind_nginx
from tests.support.processes import HttpResponse
from tests.support.waiting import wait_for
from tests.support.websocket import Client

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def proxied(run_webui, redis_db: str, database_url: str, tmp_path: Path) -> Iterator[ProxiedWebui]:
    # A broker database of the test's own: it publishes a worker of its own, seen by no other test.
    yield from serve_behind_nginx(run_webui, redis_db, database_url, tmp_path / "nginx")


def request(proxied: ProxiedWebui, method: str, path: str, form: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> HttpResponse:
    """One request through nginx, redirects not followed, `Host` with the port as browsers send it."""
    connection = http.client.HTTPConnection("127.0.0.1", proxied.nginx.port, timeout=10)
    try:
        body = urlencode(form) if form is not None else None
        sent = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {}
        connection.request(method, path, body=body, headers={**sent, **(headers or {})})
        response = connection.getresponse()
        return HttpResponse(response.status, response.read().decode(errors="replace"), dict(response.getheaders()))
    finally:
        connection.close()


def local_urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src|hx-get|hx-post|action|data-[a-z-]+-url)="(/[^"]*)"', html)


def test_pages_static_files_and_exports_come_through_under_the_prefix(proxied: ProxiedWebui) -> None:
    overview = request(proxied, "GET", PREFIX + "/", headers={"X-Forwarded-Prefix": "/evil"})

    assert overview.status == 200, overview.body[:500]
    urls = local_urls(overview.body)
    assert f"{PREFIX}/tasks" in urls and f"{PREFIX}/workers" in urls
    assert any(url.startswith(f"{PREFIX}/static/css/") for url in urls)
    outside = [url for url in urls if not url.startswith(PREFIX + "/")]
    assert not outside, f"links that leave the prefix (or follow a forged X-Forwarded-Prefix): {outside}"
    assert 'data-live-url="ws://' in overview.body and f"{PREFIX}/ws/live" in overview.body

    static = next(url for url in urls if url.endswith(".css"))
    css = request(proxied, "GET", static)
    assert css.status == 200 and "text/css" in css.headers["Content-Type"]

    assert request(proxied, "GET", PREFIX + "/tasks").status == 200
    export = request(proxied, "GET", PREFIX + "/tasks/export.csv")
    assert export.status == 200 and export.body.splitlines()[0].startswith("uuid,name,state")
    assert request(proxied, "GET", PREFIX + "/healthcheck").body == "OK"

    # The UI itself answers only under its prefix.
    assert proxied.webui.get("/tasks").status == 404
    assert proxied.webui.get(PREFIX + "/tasks").status == 200


def test_redirects_stay_under_the_prefix(proxied: ProxiedWebui) -> None:
    bare = request(proxied, "GET", PREFIX)
    assert bare.status == 301 and bare.headers["Location"].endswith(f"{PREFIX}/")

    hostname = f"gone-{uuid.uuid4().hex[:8]}@test"
    with dispatcher(proxied.broker_url, hostname=hostname, batched=False) as d:
        d.send("worker-online", freq=2.0, sw_ident="py-celery", sw_ver="5.4.0", sw_sys="Linux")
        d.send("worker-offline")
    wait_for(lambda: f'value="{hostname}"' in request(proxied, "GET", PREFIX + "/workers").body, timeout=20,
             message="the offline worker was never listed")

    # Same-origin only if X-Forwarded-Host (with the browser's port) reached the UI.
    done = request(proxied, "POST", PREFIX + "/workers/forget", {"hostname": hostname},
                   {"Origin": proxied.nginx.url})
    assert done.status == 303, done.body[:500]
    assert done.headers["Location"].startswith(f"{PREFIX}/workers?forgot=")


def test_the_live_socket_works_through_nginx_and_refuses_other_sites(proxied: ProxiedWebui) -> None:
    url = f"ws://127.0.0.1:{proxied.nginx.port}{PREFIX}/ws/live"
    ws = Client.connect(url, headers={"Origin": proxied.nginx.url})
    try:
        hello = json.loads(ws.receive(timeout=10))
        assert hello["type"] == "hello" and "tasks" in hello["topics"]
    finally:
        ws.close()

    # A forged X-Forwarded-Host cannot make another site look like this one: nginx overwrites it.
    with pytest.raises(simple_websocket.ConnectionError) as refused:
        Client.connect(url, headers={"Origin": "http://evil.example", "X-Forwarded-Host": "evil.example"})
    assert refused.value.status_code == 403


def test_a_login_goes_to_the_prefixed_login_page_and_back(run_webui, redis_db, database_url, tmp_path) -> None:
    users = f"alice:{generate_password_hash('wonderland', method='pbkdf2')}"
    for proxied in serve_behind_nginx(run_webui, redis_db, database_url, tmp_path / "nginx", "--basic-auth", users):
        browser = {"Accept": "text/html"}
        anonymous = request(proxied, "GET", PREFIX + "/tasks?state=FAILURE", headers=browser)
        assert anonymous.status == 302
        login_url = anonymous.headers["Location"]
        assert login_url.startswith(f"{PREFIX}/login?next=")
        assert request(proxied, "GET", login_url, headers=browser).status == 200

        back_to = parse_qs(urlsplit(login_url).query)["next"][0]
        logged_in = request(proxied, "POST", f"{PREFIX}/login",
                            {"username": "alice", "password": "wonderland", "next": back_to},
                            {**browser, "Origin": proxied.nginx.url})
        assert logged_in.status == 302, logged_in.body[:500]
        assert logged_in.headers["Location"] == f"{PREFIX}/tasks?state=FAILURE"
        cookie = logged_in.headers["Set-Cookie"]
        assert "; Path=/celery" in cookie  # sent back only under the prefix
        tasks = request(proxied, "GET", f"{PREFIX}/tasks", headers={**browser, "Cookie": cookie.split(";")[0]})
        assert tasks.status == 200 and "alice" in tasks.body
