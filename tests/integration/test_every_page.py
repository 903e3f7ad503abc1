"""Every page and fragment, fed by a real worker that ran a hostile task: it renders as text everywhere, and
garbage in any query parameter gets a 4xx with a message, never a 500 or a traceback.

The route list comes from the app itself, so a page added later is covered without editing this test (and
the test fails if a GET route appears that it does not know how to fill in).
"""
from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests import celeryapp as tasks
from tests.support.waiting import wait_for
from webui.app import create_app
from webui.settings import default_settings

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
GARBAGE = {
    "state": ["<script>alert(1)</script>", "SUCCESS\x00", "%ff"], "limit": ["-1", "1e9", "NaN", "9" * 40],
    "cursor": ["\x00", "-1", "9" * 40, "a:b:c"], "sort": ["'; DROP TABLE task; --"], "range": ["forever"],
    "from": ["9999-99-99"], "to": ["0"], "q": ["x" * 5000], "type": ["<img src=x>"], "since": ["-5"],
    "window": ["1y"], "newest": ["NaN"], "name": ["a" * 3000], "worker": ["\n"], "tz": ["east"],
    "runtime_min": ["inf"], "hostname": ["x" * 1000],
}
# How to fill each route's path parameters: a real value, then hostile ones.
PATH_VALUES = {
    "task_id": lambda ctx: [ctx["task_id"], HOSTILE, "x" * 300, "%0a"],
    "hostname": lambda ctx: [ctx["hostname"], HOSTILE, "h" * 300],
    "name": lambda ctx: ["celery", HOSTILE, "q" * 300],
    "fmt": lambda ctx: ["csv", "json"],
    "entry_id": lambda ctx: ["1", "999999", "9" * 40],  # no beat entry in this store: the pages' 404s
    "incident_id": lambda ctx: ["1", "999999", "9" * 40],
    "rule_id": lambda ctx: ["1", "999999", "9" * 40],
    "channel_id": lambda ctx: ["1", "999999"],
}
SKIP = {"static", "live.socket"}  # files; the WebSocket (its own tests)
PROBES = ("health.", "probes.")  # uptime probes answer 503 by design when what they watch is down
# The result backend's answer: 503 without a backend, as Flower (tests/integration/test_api_flower.py).
SKIP |= {"flower_tasks.result"}


def assert_not_a_server_error(rule, url: str, response) -> None:
    probe_down = rule.endpoint.startswith(PROBES) and response.status == 503 and response.json()
    assert response.status < 500 or probe_down, f"{url}: {response.status}\n{response.body[:500]}"


def assert_safe(url: str, response) -> None:
    """HTML shows hostile text escaped; anything else (CSV, JSON, plain-text errors) is never served as HTML."""
    content_type = response.headers.get("Content-Type", "")
    if content_type.startswith("text/html"):
        assert "<script>alert(1)" not in response.body, f"{url} shows the script unescaped"
        assert "<img src=x" not in response.body, f"{url} shows the image tag unescaped"
    else:
        assert content_type.split(";")[0] in ("text/csv", "application/json", "text/plain"), \
            f"{url} answers {content_type!r}"
        assert response.headers.get("X-Content-Type-Options") == "nosniff"


def get_routes():
    app = create_app(default_settings(database="sqlite:///:memory:"), start_collector=False)
    return [r for r in app.url_map.iter_rules() if "GET" in r.methods and r.endpoint not in SKIP]


def urls_for(rule, ctx) -> list[str]:
    names = list(rule.arguments)
    unknown = [n for n in names if n not in PATH_VALUES]
    assert not unknown, f"route {rule.rule} has parameters this test cannot fill: {unknown}"
    if not names:
        return [rule.rule]
    values = PATH_VALUES[names[0]](ctx)
    template = re.sub(r"<[^>]+>", "{}", rule.rule)
    return [template.format(quote(str(v), safe="") if names[0] != "fmt" else v) for v in values]


@pytest.fixture
def hostile_server(server):
    failed = tasks.fail.delay(HOSTILE)
    echoed = tasks.echo.delay(HOSTILE, note=HOSTILE)
    echoed.get(timeout=20)
    wait_for(lambda: "FAILURE" in server.get(f"/task/{failed.id}").body
             and "SUCCESS" in server.get(f"/task/{echoed.id}").body, timeout=20, message="tasks not stored")
    hostname = wait_for(lambda: re.search(r'href="/worker/([^"]+)"', server.get(f"/task/{failed.id}").body),
                        timeout=10, message="no worker link").group(1)
    return server, {"task_id": failed.id, "hostname": hostname}


def test_hostile_values_render_as_text_on_every_page(hostile_server):
    server, ctx = hostile_server
    checked = 0
    for rule in get_routes():
        for url in urls_for(rule, ctx):
            response = server.get(url)
            assert_not_a_server_error(rule, url, response)
            assert_safe(url, response)
            checked += 1
    assert checked >= 20


def test_garbage_query_parameters_are_refused_with_a_message_never_a_500(hostile_server):
    server, ctx = hostile_server
    for rule in get_routes():
        for url in urls_for(rule, ctx)[:1]:
            for key, values in GARBAGE.items():
                for value in values:
                    full = f"{url}?{quote(key)}={quote(value, safe='')}"
                    response = server.get(full)
                    assert_not_a_server_error(rule, full, response)
                    assert_safe(full, response)
                    if response.status == 400:
                        assert len(response.body.strip()) > 0 or "/new" in url or "/count" in url, \
                            f"{full}: a 400 without a message"
