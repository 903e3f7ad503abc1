"""Child processes of `webui demo`: each leads a process group of its own, logs to a file and dies with us.

A group of its own means a terminal's Ctrl-C reaches only the demo command, which then stops the children
in order, and a stop can sweep what a child forked (a worker's pool processes) with one killpg.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # prctl(2) option number


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChildProcess:
    """`argv` started in a new session, stdout and stderr to `log_path`."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent(),
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the child's whole process group (a no-op once the group is gone)."""
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the group, wait up to `grace` s for the child, then SIGKILL whatever is left of the group."""
        if self.alive:
            self.signal_group(signal.SIGTERM)
            self.wait(grace)
        self.kill()

    def wait(self, timeout: float) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        """SIGKILL the group, pool processes that outlived their parent included, and reap the child."""
        self.signal_group(signal.SIGKILL)
        self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_all(children: Sequence[ChildProcess], grace: float = 8.0) -> None:
    """Stop all of `children` at once (SIGTERM together, one shared grace period), then SIGKILL the rest."""
    for child in children:
        if child.alive:
            child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        child.wait(max(0.0, deadline - time.monotonic()))
    for child in children:
        child.kill()


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, have the kernel SIGTERM the child when the demo command dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return set_death_signal
