"""Refuse cross-site state-changing requests: a browser's `Sec-Fetch-Site`, else its `Origin` or `Referer`.

There is no login yet, so there is no session to forge; but a page on another site can still make a
visitor's browser POST to a monitor on localhost or the intranet. Browsers say where a request comes from:
`Sec-Fetch-Site` (all current browsers) must be `same-origin` or `none` (typed in the address bar); without it,
the host of `Origin` (or `Referer`) must be the host the request was sent to. A request that says nothing
about where it comes from is refused too: scripts and API clients send `Origin: <the UI's own URL>`.

The auth issue builds its CSRF protection on `check()`; bearer-token API requests will be exempt there.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Request, abort, request

F = TypeVar("F", bound=Callable[..., Any])

_ALLOWED_FETCH_SITES = ("same-origin", "none")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def check(req: Request) -> str | None:
    """Why `req` is refused as cross-site, or None when it comes from this site."""
    fetch_site = req.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        if fetch_site.strip().lower() in _ALLOWED_FETCH_SITES:
            return None
        return f"the browser says this request comes from another site (Sec-Fetch-Site: {fetch_site})"
    for header in ("Origin", "Referer"):
        value = req.headers.get(header)
        if value:
            source = _host(value)
            if source is not None and source == _host(f"{req.scheme}://{req.host}"):
                return None
            return f"its {header} ({value}) is not this site ({req.host})"
    return "it does not say where it comes from (no Sec-Fetch-Site, Origin or Referer header)"


def same_origin_required(view: F) -> F:
    """Decorator: answer 403, saying why, unless the request comes from this site (see `check`)."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        problem = check(request)
        if problem is not None:
            abort(403, description=f"Refused as a cross-site request: {problem}. "
                                   "Use the button on this site's own page.")
        return view(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def _host(url: str) -> str | None:
    """`https://Example.com:443/x` → `example.com`; `http://h:8080` → `h:8080`; None when not a URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and str(port) != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return host
