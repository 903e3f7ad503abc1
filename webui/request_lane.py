"""The read lane: a web process runs its page and API reads a few at a time (`read_concurrency`), not all at once.

Why: Python's sqlite3 lets go of the GIL around every row it steps, and gets it back only when the thread
running Python code gives it up, up to `sys.getswitchinterval()` (5 ms) later. A request stepping a hundred
rows beside one that renders a page therefore waits about a hundred times 5 ms. Measured (docs/performance.md):
beside one busy thread, a 1 ms "new tasks" notice took 460 ms and a 12 ms tasks page 630 ms. Taking turns, each
read runs at its own cost, and the process spends less CPU on the same work (no GIL hand-offs between threads).

What takes a turn: GET and HEAD requests, once the login gate has let them in, until their response is made. A
streamed body (an export) is sent after the turn ends. What does not take a turn:
- other methods (controls, forms, logins: rare, and some wait on the broker);
- WebSockets (a live socket lasts as long as its page);
- static files;
- views marked `outside_lane`, which wait on the network: the broker, the result backend, the OAuth provider.

No request waits longer than `LANE_WAIT` seconds for its turn. After that it runs beside the others, as it would
without a lane, because one stuck read must not stall the process.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from peewee import Database

from webui.store.database import is_sqlite

LANE_WAIT = 2.0  # seconds a read waits for its turn before it runs anyway
READ_METHODS = frozenset({"GET", "HEAD"})

View = TypeVar("View", bound=Callable[..., Any])


def outside_lane(view: View) -> View:
    """Mark a view that waits on the network: it runs beside the lane and never holds up the reads in it."""
    view.outside_lane = True  # type: ignore[attr-defined]
    return view


def default_width(db: Database) -> int:
    """1 on SQLite. No lane on PostgreSQL: there a read spends much of its time waiting for the database
    server, and a turn held across those waits would leave the process idle (measured: p50 400 ms instead of
    130 ms with one process at 1,000 events/s)."""
    return 1 if is_sqlite(db) else 0


def init_app(app: Flask, width: int) -> None:
    """Let `width` reads run at once in this process (0: no lane, every request at once)."""
    if width <= 0:
        return
    turns = threading.BoundedSemaphore(width)

    def take_turn() -> None:
        if _takes_turn() and turns.acquire(timeout=LANE_WAIT):
            g.webui_lane_turn = True

    def end_turn() -> None:
        if g.pop("webui_lane_turn", False):
            turns.release()

    def end_turn_after(response: Response) -> Response:
        end_turn()
        return response

    # After the hooks already registered: the gate's password check (scrypt, ~160 ms of CPU for every request
    # with basic auth) must not hold the turn while other reads wait for it.
    app.before_request(take_turn)
    app.after_request(end_turn_after)  # before a streamed body is sent
    app.teardown_request(lambda _exc: end_turn())  # a response never made (the client went away mid-request)


def _takes_turn() -> bool:
    if request.method not in READ_METHODS or request.endpoint == "static":
        return False
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return False
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None  # None: a 404
    return not getattr(view, "outside_lane", False)
