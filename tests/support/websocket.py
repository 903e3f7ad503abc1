"""A WebSocket client for the live-updates tests."""
from __future__ import annotations

import json
import time

import simple_websocket


class Client(simple_websocket.Client):
    """simple-websocket's client, sending `Host: host:port` as browsers do (it leaves the port out)."""

    def handshake(self) -> None:
        self.host = f"{self.host}:{self.port}"
        try:
            super().handshake()
        except Exception:
            self.sock.close()  # simple-websocket leaves a refused handshake's socket open
            raise


def messages_until(ws: simple_websocket.Client, wanted, timeout: float = 20.0) -> list[dict]:
    """JSON messages received until one satisfies `wanted` (fails after `timeout` seconds, naming them)."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        if raw is None:
            continue
        seen.append(json.loads(raw))
        if wanted(seen[-1]):
            return seen
    raise AssertionError(f"no wanted message in {timeout}s; got {seen}")
