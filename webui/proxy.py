"""Behind a reverse proxy, under a path prefix: which `X-Forwarded-*` headers to believe, and where the UI lives.

Two settings, applied as WSGI middleware around the Flask app, so `url_for`, redirects, static files, the
session cookie's path and the `/ws/live` route all follow them:

- `proxy_count` (default 0): how many proxies in front of us set `X-Forwarded-For`, `-Proto`, `-Host` and
  `-Prefix`. With 0 none of these headers is believed, whoever sends them. With N, werkzeug's `ProxyFix`
  takes the N-th value from the right of each (the one our outermost trusted proxy wrote) and ignores a header
  with fewer values. `X-Forwarded-Port` is never read: `X-Forwarded-Host` carries the port the browser used
  (nginx `$http_host`), which is what the WebSocket `Origin` check compares with; a proxy's own listening port
  is wrong behind port mapping (docker `-p 8080:80`).
- `url_prefix` (e.g. `/celery`): the UI answers under that path whether or not a proxy strips it. A request
  path starting with the prefix has it moved from `PATH_INFO` to `SCRIPT_NAME` (Flower's `--url_prefix`; the
  proxy passes paths unchanged). A trusted `X-Forwarded-Prefix` ending with it means the proxy already
  stripped it, so `proxy_pass http://ui/` with `X-Forwarded-Prefix` works too (Flower 0.9.5 broke exactly one
  of the two styles: mher/flower #1069, #1001). `/` redirects to the prefix; any other path outside it is 404.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Path segments of unreserved characters only: nothing to percent-encode, quote in nginx, or read as a dot-segment.
_PREFIX = re.compile(r"^(/(?!\.{1,2}(?:/|$))[A-Za-z0-9._~-]+)+$")


def normalize_prefix(text: str | None) -> str:
    """`celery/` → `/celery`; `/a//b/` → `/a/b`; empty or `/` → `` (no prefix)."""
    segments = [segment for segment in (text or "").strip().split("/") if segment]
    return "".join(f"/{segment}" for segment in segments)


def prefix_problem(text: str) -> str | None:
    """Why `text` is no usable `url_prefix`, or None (the settings check)."""
    prefix = normalize_prefix(text)
    if prefix and not _PREFIX.match(prefix):
        return ("must be a path such as /celery: segments of letters, digits and . _ ~ - only "
                "(no . or .. segments, no query or percent-encoding)")
    return None


def init_app(app: Flask, settings: Any) -> None:
    """Wrap `app.wsgi_app` for `settings.proxy_count` and `settings.url_prefix`; scope cookies to the prefix."""
    prefix = normalize_prefix(settings.url_prefix)
    app.wsgi_app = wrap(app.wsgi_app, proxy_count=settings.proxy_count,  # type: ignore[method-assign,assignment]
                        url_prefix=prefix)
    # Flask takes the session cookie's Path, and url_for's prefix outside a request (links in notifications),
    # from APPLICATION_ROOT. A proxy's X-Forwarded-Prefix alone leaves it at /, wide but working.
    app.config["APPLICATION_ROOT"] = prefix or "/"


def wrap(wsgi_app: WSGIApplication, *, proxy_count: int, url_prefix: str) -> WSGIApplication:
    """`wsgi_app` behind ProxyFix (only when `proxy_count` > 0) and the prefix (only when one is set)."""
    wrapped = wsgi_app
    if url_prefix:
        wrapped = PathPrefix(wrapped, url_prefix)
    if proxy_count > 0:
        wrapped = ProxyFix(CheckedForwardedPrefix(wrapped), x_for=proxy_count, x_proto=proxy_count,
                           x_host=proxy_count, x_port=0, x_prefix=proxy_count)
    return wrapped


class CheckedForwardedPrefix:
    """After ProxyFix: keep an `X-Forwarded-Prefix` only when it is a clean path (`/celery`, no trailing slash)."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        original = environ.get("werkzeug.proxy_fix.orig", {}).get("SCRIPT_NAME", "")
        script = environ.get("SCRIPT_NAME", "")
        if script != original:
            forwarded = normalize_prefix(script)
            environ["SCRIPT_NAME"] = forwarded if not forwarded or _PREFIX.match(forwarded) else original
        return self.app(environ, start_response)


class PathPrefix:
    """Serve `app` under `prefix` (normalised, e.g. `/celery`); see the module docstring."""

    def __init__(self, app: WSGIApplication, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        prefix = self.prefix
        script = environ.get("SCRIPT_NAME", "").rstrip("/")
        path = environ.get("PATH_INFO", "") or "/"
        if path == prefix:
            return self._redirect(environ, start_response, f"{script}{prefix}/", 308)
        if path.startswith(prefix + "/"):
            # A trusted X-Forwarded-Prefix that already names the prefix came from a proxy that passed the
            # path unchanged: don't count the prefix twice.
            environ["SCRIPT_NAME"] = script if script.endswith(prefix) else script + prefix
            environ["PATH_INFO"] = path[len(prefix):]
        elif script.endswith(prefix):
            pass  # the proxy stripped the prefix and said so in a trusted X-Forwarded-Prefix
        elif path == "/":
            # 302, not 301: browsers keep a permanent redirect forever, and the prefix may change.
            return self._redirect(environ, start_response, f"{script}{prefix}/", 302)
        else:
            response = Response(f"Not found: Celery WebUI is served under {script}{prefix}/\n", status=404,
                                mimetype="text/plain")
            return response(environ, start_response)
        return self.app(environ, start_response)

    @staticmethod
    def _redirect(environ: WSGIEnvironment, start_response: StartResponse, location: str,
                  status: int) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING", "")
        response = Response("", status=status, headers={"Location": f"{location}?{query}" if query else location})
        return response(environ, start_response)

