"""The image's HEALTHCHECK: exit 0 when this container's `webui serve` answers 200 on /healthcheck, else 1.

It reads the settings the server read (WEBUI_* variables, *_FILE secrets, WEBUI_CONFIG), so a changed port or
url_prefix needs no second place to change. Slim images have no curl; this is the standard library only.
"""
from __future__ import annotations

import sys
import urllib.request

from webui.settings import load_settings

# A server listening on every address is asked on loopback; one bound to a single address, on that address.
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}


def healthcheck_url() -> str:
    settings = load_settings()
    host = WILDCARDS.get(settings.address, settings.address)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    prefix = (settings.url_prefix or "").strip("/")
    path = f"/{prefix}/healthcheck" if prefix else "/healthcheck"
    return f"http://{host}:{settings.port}{path}"


def main() -> int:
    url = healthcheck_url()
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as error:  # HTTPError (a 503 says why in its body) is an OSError too
        print(f"{url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
