"""A WebSocket client for the live-updates tests."""
from __future__ import annotations

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
