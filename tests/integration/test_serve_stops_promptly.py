"""A SIGTERM stops `webui serve` at once even with live pages open: their sockets close with "going away"."""
from __future__ import annotations

import json
import time

import pytest
import simple_websocket

from tests.integration.test_live_updates import connect


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_open_live_sockets_do_not_hold_up_a_stop(server):
    sockets = [connect(server) for _ in range(3)]
    for ws in sockets:
        assert json.loads(ws.receive(timeout=5))["type"] == "hello"

    started = time.monotonic()
    server.terminate()
    assert server.wait(timeout=15) == 0
    took = time.monotonic() - started

    assert took < 4, f"serve took {took:.1f}s to stop with live sockets open (gunicorn's grace is 5 s)"
    for ws in sockets:
        try:
            ws.receive(timeout=2)
        except simple_websocket.ConnectionClosed:
            pass
        assert not ws.connected
        assert ws.close_reason == 1001, "the page is told the server is going away, and reconnects"
