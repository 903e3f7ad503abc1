"""`/ws/live`: the WebSocket that tells open pages which topics changed (the contract is in `webui.live`)."""
from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, g, request
from flask_sock import Sock

from webui.live import SHUTTING_DOWN, TOPICS, LiveHub, decode_mark, encode_mark, read_snapshot

log = logging.getLogger(__name__)

bp = Blueprint("live", __name__)
sock = Sock()

PING_INTERVAL = 25.0  # seconds: keeps proxies from closing an idle socket, and lets the page notice a dead one
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_GOING_AWAY = 1001
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# The pages with live parts (an element with data-live), not their fragments. Another page's socket has no
# mark and is told every topic once, which is safe, only one fetch more.
LIVE_PAGES = frozenset({"home.index", "tasks.index", "task.detail", "events.index", "queues.index",
                        "queues.detail", "workers.index", "workers.detail"})


def init_app(app: Flask) -> None:
    """Register `/ws/live` and this process's hub (its thread starts with the first socket)."""
    settings = app.config["WEBUI_SETTINGS"]
    # A socket holds a gunicorn thread for its whole life: always leave one thread for pages.
    cap = max(0, min(settings.live_max_sockets, settings.threads - 1))
    app.extensions["webui_live_hub"] = LiveHub(app.config["WEBUI_DATABASE"], cap,
                                               send_interval=settings.live_interval)
    app.register_blueprint(bp)
    sock.init_app(app)
    app.before_request(_mark_live_page)
    app.context_processor(lambda: {"live_mark": g.get("live_mark", "")})


def _mark_live_page() -> None:
    """Before a live page's own queries: the store's change markers, for its socket to hand back (webui.live)."""
    if request.method != "GET" or request.endpoint not in LIVE_PAGES or request.headers.get("HX-Request"):
        return
    try:
        g.live_mark = encode_mark(read_snapshot(current_app.config["WEBUI_DATABASE"]))
    except Exception as exc:  # noqa: BLE001 - the page says what is wrong with the store in its own way
        log.debug("no live mark for this page: %s", exc)


def origin_problem(origin: str | None, host: str) -> str | None:
    """Why a handshake with this `Origin` is refused, or None when it comes from this site.

    Browsers always send `Origin` on a WebSocket handshake, and a page of another site must not read ours
    (cross-site WebSocket hijacking). A client that sends none is no browser and is let in.
    """
    if origin is None:
        return None
    try:
        theirs, ours = urlsplit(origin.strip()), urlsplit(f"//{host}")
        their_port = theirs.port or _DEFAULT_PORTS.get(theirs.scheme.lower())
        our_port = ours.port
    except ValueError:
        return f"its Origin ({origin}) is not a URL"
    if not theirs.hostname or theirs.hostname != ours.hostname:
        return f"its Origin ({origin}) is not this site ({host})"
    # Without a port in Host the scheme is unknown here (TLS may end at a proxy): either default port matches.
    if their_port not in ((our_port,) if our_port is not None else (80, 443)):
        return f"its Origin ({origin}) is not this site ({host})"
    return None


@bp.before_request
def refuse_other_sites() -> Response | None:
    """Answer the handshake of a page from another site with 403, before any upgrade."""
    problem = origin_problem(request.headers.get("Origin"), request.host)
    if problem:
        return Response(f"Refused a live-updates socket: {problem}.\n", status=403, mimetype="text/plain")
    return None


@sock.route("/ws/live", bp=bp)
def socket(ws: Any) -> None:
    """Say hello, then the changed topics as they come (at most every `live_interval` seconds), a ping every 25 s."""
    hub: LiveHub = current_app.extensions["webui_live_hub"]
    _release_database()
    subscription = hub.subscribe(baseline=decode_mark(request.args.get("since")))
    if subscription is None:
        ws.close(reason=CLOSE_TRY_AGAIN_LATER,
                 message=f"live updates are full on this server process ({hub.max_sockets} sockets); polling")
        return
    try:
        ws.send(json.dumps({"type": "hello", "topics": list(TOPICS)}))
        next_ping = time.monotonic() + PING_INTERVAL
        while ws.connected and not SHUTTING_DOWN.is_set():
            # Short waits, so a closed socket frees its thread within a second.
            topics = subscription.wait(timeout=min(1.0, max(0.0, next_ping - time.monotonic())))
            if topics:
                ws.send(json.dumps({"type": "changed", "topics": topics}))
            if time.monotonic() >= next_ping:
                ws.send(json.dumps({"type": "ping"}))
                next_ping += PING_INTERVAL
        if SHUTTING_DOWN.is_set():
            ws.close(reason=CLOSE_GOING_AWAY, message="the server is restarting")
    finally:
        hub.unsubscribe(subscription)


def _release_database() -> None:
    # The socket reads nothing from the store (the hub does): don't hold a pooled connection for hours.
    db = current_app.config["WEBUI_DATABASE"]
    if not db.is_closed():
        db.close()
