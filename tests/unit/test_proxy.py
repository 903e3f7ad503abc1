"""Behind a proxy, under a prefix (webui.proxy): forwarded headers count only from `proxy_count` proxies, and
`url_prefix` holds for routing, url_for, static files and redirects whether or not the proxy strips it."""
from __future__ import annotations

import json

import pytest
from flask import Flask, jsonify, redirect, request, session, url_for
from werkzeug.test import TestResponse

from webui import proxy
from webui.serve import gunicorn_options
from webui.settings import SettingsError, default_settings


def make_app(**settings: object) -> Flask:
    app = Flask(__name__)
    app.secret_key = "test"
    proxy.init_app(app, default_settings(**settings))

    @app.get("/")
    def home() -> object:
        return jsonify(remote=request.remote_addr, scheme=request.scheme, host=request.host,
                       root=request.script_root, path=request.path, home=url_for("home"),
                       static=url_for("static", filename="css/webui.css"),
                       external=url_for("home", _external=True))

    @app.post("/act")
    def act() -> object:
        return redirect(url_for("home", done=1), code=303)

    @app.get("/login")
    def login() -> object:
        session["user"] = "alice"
        return "in"

    return app


class Client:
    """Flask's test client sends requests under APPLICATION_ROOT; a proxy or browser sends the bare path."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()

    def get(self, path: str, **kwargs: object) -> TestResponse:
        return self.client.get(path, base_url="http://localhost/", **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> TestResponse:
        return self.client.post(path, base_url="http://localhost/", **kwargs)  # type: ignore[arg-type]


def get(app: Flask, path: str, **headers: str) -> dict[str, str]:
    response = Client(app).get(path, headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert response.status_code == 200, (response.status_code, response.get_data(as_text=True))
    return json.loads(response.get_data())


FORGED = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
          "X-Forwarded-Prefix": "/evil"}


# -- proxy_count ------------------------------------------------------------------------------------------


def test_it_believes_no_forwarded_header_by_default() -> None:
    seen = get(make_app(), "/", Host="monitor:5555", **FORGED)

    assert seen["remote"] == "10.0.0.9"
    assert (seen["scheme"], seen["host"], seen["root"]) == ("http", "monitor:5555", "")
    assert seen["external"] == "http://monitor:5555/"


def test_it_believes_the_last_value_each_trusted_proxy_wrote() -> None:
    app = make_app(proxy_count=1)
    seen = get(app, "/", Host="127.0.0.1:5555", **{
        "X-Forwarded-For": "6.6.6.6, 203.0.113.7",  # the client forged the first; nginx appended the second
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "ops.example.com", "X-Forwarded-Prefix": "/celery"})

    assert seen["remote"] == "203.0.113.7"
    assert (seen["scheme"], seen["host"], seen["root"]) == ("https", "ops.example.com", "/celery")
    assert seen["home"] == "/celery/"
    assert seen["static"] == "/celery/static/css/webui.css"
    assert seen["external"] == "https://ops.example.com/celery/"


def test_two_proxies_mean_the_second_value_from_the_right() -> None:
    seen = get(make_app(proxy_count=2), "/", **{"X-Forwarded-For": "6.6.6.6, 198.51.100.1, 10.1.1.1"})

    assert seen["remote"] == "198.51.100.1"


def test_a_header_with_fewer_values_than_proxies_is_ignored() -> None:
    seen = get(make_app(proxy_count=2), "/", **{"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.example"})

    assert seen["remote"] == "10.0.0.9"
    assert seen["host"] == "localhost"


def test_forwarded_port_is_not_read_the_host_keeps_the_port_the_browser_used() -> None:
    seen = get(make_app(proxy_count=1), "/", **{"X-Forwarded-Host": "ops.example.com:8443", "X-Forwarded-Port": "80"})

    assert seen["host"] == "ops.example.com:8443"


@pytest.mark.parametrize("forwarded", ['/x"><script>', "/../admin", "/a b", "/caf%C3%A9"])
def test_a_forwarded_prefix_that_is_no_clean_path_is_dropped(forwarded: str) -> None:
    seen = get(make_app(proxy_count=1), "/", **{"X-Forwarded-Prefix": forwarded})

    assert seen["root"] == ""


def test_a_forwarded_prefix_never_makes_links_to_another_host() -> None:
    seen = get(make_app(proxy_count=1), "/", **{"X-Forwarded-Prefix": "//evil.example"})

    assert seen["home"] == "/evil.example/"  # a path on this site, not the protocol-relative //evil.example/


def test_a_forwarded_prefix_loses_its_trailing_slash() -> None:
    assert get(make_app(proxy_count=1), "/", **{"X-Forwarded-Prefix": "/celery/"})["home"] == "/celery/"


def test_gunicorn_is_told_to_believe_no_forwarded_header_itself() -> None:
    options = gunicorn_options(default_settings(proxy_count=1))

    assert options["forwarded_allow_ips"] == ""
    assert options["secure_scheme_headers"] == {}


# -- url_prefix -------------------------------------------------------------------------------------------


def test_pages_and_their_urls_live_under_the_prefix() -> None:
    seen = get(make_app(url_prefix="/celery"), "/celery/")

    assert (seen["root"], seen["path"]) == ("/celery", "/")
    assert seen["home"] == "/celery/"
    assert seen["static"] == "/celery/static/css/webui.css"


def test_static_files_are_served_under_the_prefix() -> None:
    from webui import paths

    app = make_app(url_prefix="/celery")
    app.static_folder = paths.STATIC_DIR
    client = Client(app)

    served, outside = client.get("/celery/static/css/webui.css"), client.get("/static/css/webui.css")
    served.close()
    assert (served.status_code, outside.status_code) == (200, 404)


def test_a_redirect_stays_under_the_prefix() -> None:
    response = Client(make_app(url_prefix="/celery")).post("/celery/act")

    assert response.status_code == 303
    assert response.headers["Location"] == "/celery/?done=1"


def test_the_bare_prefix_gets_its_slash_and_the_root_redirects_to_the_prefix() -> None:
    client = Client(make_app(url_prefix="celery/"))

    bare = client.get("/celery?x=1")
    root = client.get("/")
    assert (bare.status_code, bare.headers["Location"]) == (308, "/celery/?x=1")
    assert (root.status_code, root.headers["Location"]) == (302, "/celery/")


def test_paths_outside_the_prefix_are_not_found() -> None:
    client = Client(make_app(url_prefix="/celery"))

    for path in ("/tasks", "/celeryx/", "/static/css/webui.css", "/healthcheck"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "served under /celery/" in response.get_data(as_text=True)


def test_a_proxy_that_strips_the_prefix_and_says_so_works_too() -> None:
    app = make_app(url_prefix="/celery", proxy_count=1)

    stripped = get(app, "/", **{"X-Forwarded-Prefix": "/celery"})
    unchanged = get(app, "/celery/", **{"X-Forwarded-Prefix": "/celery"})
    assert stripped["home"] == unchanged["home"] == "/celery/"


def test_a_proxy_prefix_in_front_of_the_url_prefix_adds_up() -> None:
    seen = get(make_app(url_prefix="/celery", proxy_count=1), "/celery/", **{"X-Forwarded-Prefix": "/ops"})

    assert seen["home"] == "/ops/celery/"


def test_a_forged_prefix_cannot_move_the_ui_without_proxy_count() -> None:
    client = Client(make_app(url_prefix="/celery"))

    assert client.get("/", headers={"X-Forwarded-Prefix": "/celery"}).status_code == 302
    assert get(make_app(url_prefix="/celery"), "/celery/", **{"X-Forwarded-Prefix": "/evil"})["home"] == "/celery/"


def test_the_session_cookie_is_scoped_to_the_prefix() -> None:
    response = Client(make_app(url_prefix="/celery")).get("/celery/login")

    assert "Path=/celery" in response.headers["Set-Cookie"]


# -- the settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "normalized"), [
    ("/celery", "/celery"), ("celery", "/celery"), ("/celery/", "/celery"), ("/ops//celery/", "/ops/celery"),
    ("/", ""), ("", ""), (None, ""),
])
def test_prefixes_are_normalized(given: str | None, normalized: str) -> None:
    assert proxy.normalize_prefix(given) == normalized


@pytest.mark.parametrize("bad", ["/cel ery", "/../x", "/a/./b", "/celery?x=1", "/c%2Fd", "/caf\u00e9", "/a#b"])
def test_a_prefix_that_is_no_clean_path_is_refused(bad: str) -> None:
    with pytest.raises(SettingsError, match="url_prefix.*must be a path such as /celery"):
        default_settings(url_prefix=bad)


def test_proxy_count_defaults_to_trusting_nobody() -> None:
    settings = default_settings()

    assert settings.proxy_count == 0
    assert settings.url_prefix is None
    with pytest.raises(SettingsError, match="at least 0"):
        default_settings(proxy_count=-1)
