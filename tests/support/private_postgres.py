"""A PostgreSQL server of a test's own, to stop, crash and restart under a running collector.

The shared server at 127.0.0.1:5432 is everyone's; a test that restarts a database needs its own. `initdb`
refuses to run as root, so as root the cluster belongs to the `postgres` system user and every server
command runs as that user (runuser).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.waiting import wait_for


def postgres_bin_dir() -> str | None:
    """The directory holding initdb and pg_ctl (Debian keeps them out of PATH), or None."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return os.path.dirname(candidates[0]) if candidates else None


class PrivatePostgres:
    def __init__(self, bin_dir: str, directory: str, port: int) -> None:
        self.bin_dir = bin_dir
        self.directory = directory
        self.data = os.path.join(directory, "data")
        self.port = port
        self.as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [os.path.join(self.bin_dir, argv[0]), *argv[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> None:
        if self.as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        # fsync off: a crash here is the server's (pg_ctl -m immediate), never the machine's, so what was
        # written survives it. synchronous_commit stays on: off, a crash takes the last commits with it.
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.directory, "server.log"),
                  "-w", "-t", "60", "start")
        wait_for(self.answers, timeout=30, message=f"private PostgreSQL on port {self.port} never answered")

    def stop(self, mode: str = "fast") -> None:
        """`fast`: a clean shutdown; `immediate`: as a crash (recovery at the next start)."""
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop", check=False)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def log_text(self) -> str:
        path = os.path.join(self.directory, "server.log")
        return open(path, errors="replace").read() if os.path.exists(path) else ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def start_private_postgres(bin_dir: str) -> Iterator[PrivatePostgres]:
    directory = tempfile.mkdtemp(prefix="webui-pg-")
    server = PrivatePostgres(bin_dir, directory, _free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
