"""POST JSON with urllib: a 10 s timeout, no redirects, and errors that name the host but never the URL.

Webhook URLs are credentials (Slack's and Discord's carry the token in the path), so a failure says
"HTTP 404 from hooks.slack.com: no_service", never the address it was sent to.
"""
from __future__ import annotations

import http.client
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from webui import __version__, fastjson
from webui.alerts.channels import DeliveryError, mask

TIMEOUT = 10.0
USER_AGENT = f"celery-webui/{__version__}"
# Client errors worth another try: a timeout, too early, rate limited. Any other 4xx will not fix itself.
RETRYABLE_CLIENT_ERRORS = frozenset({408, 425, 429})
_BODY_SNIPPET = 200


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without the body, and report success for it.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def check_url(url: Any, what: str = "url") -> list[str]:
    """Problems with a URL to POST to (for `validate`): it must be http(s) with a host."""
    if not isinstance(url, str) or not url:
        return [f"{what} is required"]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"{what} must be an http:// or https:// address"]
    return []


def post_json(url: str, payload: Any, *, headers: Mapping[str, str] | None = None, secrets: Sequence[str] = (),
              timeout: float = TIMEOUT) -> bytes:
    """POST `payload` as JSON; see `post`."""
    return post(url, fastjson.dumps(payload).encode(), headers=headers, secrets=secrets, timeout=timeout)


def post(url: str, body: bytes, *, headers: Mapping[str, str] | None = None, secrets: Sequence[str] = (),
         timeout: float = TIMEOUT) -> bytes:
    """POST `body` (JSON) to `url`; the response body on 2xx, else DeliveryError with `secrets` masked."""
    host = _host(url)
    if check_url(url):
        raise DeliveryError("the URL is not an http:// or https:// address", permanent=True)
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})})
    hidden = [url, *secrets]
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        status = exc.code
        snippet = _snippet(exc)
        permanent = 300 <= status < 500 and status not in RETRYABLE_CLIENT_ERRORS
        raise DeliveryError(mask(f"HTTP {status} from {host}{snippet}", hidden), permanent=permanent) from None
    except urllib.error.URLError as exc:
        raise DeliveryError(mask(f"cannot reach {host}: {exc.reason}", hidden)) from None
    except TimeoutError:
        raise DeliveryError(f"no answer from {host} within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(mask(f"{host}: {type(exc).__name__}: {exc}", hidden)) from None


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "the server"
    except ValueError:
        return "the server"


def _snippet(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(_BODY_SNIPPET * 4).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        exc.close()
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return ""
    return ": " + (text if len(text) <= _BODY_SNIPPET else text[:_BODY_SNIPPET] + "…")
