"""The same-origin check that refuses cross-site POSTs: Sec-Fetch-Site first, else Origin, else Referer."""
from __future__ import annotations

import pytest
from flask import Flask

from webui.views.same_origin import check, same_origin_required

app = Flask(__name__)


@app.post("/act")
@same_origin_required
def act() -> str:
    return "done"


def problem(headers: dict[str, str], host: str = "monitor.internal:5555") -> str | None:
    with app.test_request_context("/act", method="POST", headers={"Host": host, **headers}):
        from flask import request
        return check(request)


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "none"},
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"},  # the browser's own word wins
    {"Origin": "http://monitor.internal:5555"},
    {"Origin": "http://MONITOR.internal:5555"},
    {"Referer": "http://monitor.internal:5555/workers?x=1"},
])
def test_it_accepts_requests_from_this_site(headers):
    assert problem(headers) is None


@pytest.mark.parametrize(("headers", "says"), [
    ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
    ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site: same-site"),  # a sibling subdomain is another site
    ({"Origin": "http://evil.example"}, "Origin (http://evil.example) is not this site"),
    ({"Origin": "http://monitor.internal:6666"}, "is not this site"),
    ({"Origin": "null"}, "Origin (null)"),
    ({"Referer": "http://evil.example/monitor.internal:5555"}, "Referer"),
    ({}, "does not say where it comes from"),
])
def test_it_refuses_cross_site_or_unknown_requests(headers, says):
    assert says in (problem(headers) or "")


def test_default_ports_are_the_same_host():
    assert problem({"Origin": "https://monitor.internal"}, host="monitor.internal") is None
    assert problem({"Origin": "http://monitor.internal:80"}, host="monitor.internal") is None


def test_the_decorator_answers_403_saying_why():
    client = app.test_client()
    refused = client.post("/act", headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403 and "cross-site" in refused.get_data(as_text=True)
    assert client.post("/act", headers={"Sec-Fetch-Site": "same-origin"}).get_data(as_text=True) == "done"
