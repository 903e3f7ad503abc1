"""Child processes the integration tests drive: a real Celery worker and `python -m webui …`.

Each child leads its own process group and logs to a file, so teardown can end it together with whatever
it forked (pool children, gunicorn workers), and a failing test can show what it said.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from celery.utils.nodenames import default_nodename, host_format

from tests.support.services import free_port
from tests.support.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours minus a developer's WEBUI_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBUI_") or k.startswith("WEBUI_TEST_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class LoggedProcess:
    """A subprocess whose stdout and stderr go to `log_path`; it leads its own process group."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = child_env(env)
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=REPO_ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def poll(self) -> int | None:
        return self.process.poll()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the main process only (not to its children)."""
        if self.alive:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.kill(signal.SIGTERM)

    def wait(self, timeout: float = 10.0) -> int:
        return self.process.wait(timeout)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, SIGKILL after `grace` seconds, then SIGKILL anything left in the process group."""
        self.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def assert_alive(self, doing: str) -> None:
        if not self.alive:
            raise AssertionError(
                f"{' '.join(self.argv)} exited with {self.poll()} while {doing}; log {self.log_path}:\n"
                f"{self.log_tail()}"
            )


# -- Celery worker ----------------------------------------------------------------------------------------


class CeleryWorker:
    """A real prefork worker (`-c 2`) of `tests.celeryapp` on `broker_url`; `ensure_alive` restarts it if it
    died. With `task_events=False` it starts without -E and sends no task events until `enable_events`."""

    # The test session's pid in the default name: two test sessions on one machine (a developer's and CI's)
    # must not answer each other's pings and inspects under one name.
    def __init__(self, app: Celery, broker_url: str, log_path: Path, name: str = f"testworker-{os.getpid()}@%h",
                 task_events: bool = True, env: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.task_events = task_events
        self.env = dict(env or {})
        self.broker_url = broker_url
        self.log_path = log_path
        self.name = name
        self.hostname = host_format(default_nodename(name))
        self.process: LoggedProcess | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "worker not started"
        return self.process.pid

    def argv(self) -> list[str]:
        events = ["-E"] if self.task_events else []
        return [sys.executable, "-m", "celery", "-A", "tests.celeryapp", "worker", *events, "-P", "prefork",
                "-c", "2", "--without-mingle", "--without-gossip", "-n", self.name, "-l", "info"]

    def start(self, timeout: float = 30.0) -> CeleryWorker:
        env = {"WEBUI_TEST_BROKER": self.broker_url, "WEBUI_TEST_TASK_EVENTS": "1" if self.task_events else "0",
               **self.env}
        self.process = LoggedProcess(self.argv(), self.log_path, env=env)
        process = self.process

        def answers() -> bool:
            process.assert_alive("waiting for the worker to answer ping")
            return self.ping()

        wait_for(answers, timeout=timeout, interval=0.1, message=f"{self.hostname} never answered ping")
        return self

    def ping(self, timeout: float = 0.5) -> bool:
        replies = self.app.control.ping(destination=[self.hostname], timeout=timeout, limit=1)
        return any(self.hostname in reply for reply in replies)

    def ensure_alive(self) -> CeleryWorker:
        """Restart the worker if its main process died (a killed pool child leaves it running)."""
        if self.process is not None and self.process.alive:
            return self
        if self.process is not None:
            self.process.stop(grace=0)
            with open(self.log_path, "a") as log:
                log.write(f"\n---- worker exited with {self.process.poll()}: restarting ----\n")
        return self.start()

    def stop(self, grace: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(grace)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# -- python -m webui --------------------------------------------------------------------------------------


@dataclass
class HttpResponse:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(url: str, timeout: float = 5.0) -> HttpResponse:
    """GET `url`; an HTTP error status is a response too. Raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read().decode(errors="replace")
            return HttpResponse(response.status, body, dict(response.headers))
    except urllib.error.HTTPError as error:
        with error:
            return HttpResponse(error.code, error.read().decode(errors="replace"), dict(error.headers))


class WebuiProcess(LoggedProcess):
    """`python -m webui <command> …` (`serve` or `collect`); `url` is set for `serve`."""

    def __init__(self, command: str, args: Sequence[str], log_path: Path,
                 env: Mapping[str, str] | None = None) -> None:
        args = list(args)
        self.port: int | None = None
        if command == "serve":
            if "--port" not in args:
                args += ["--port", str(free_port())]
            if "--address" not in args:
                args += ["--address", "127.0.0.1"]
            if not any(arg.startswith("--workers") for arg in args):
                # One web process unless a test asks for more (the default is 2): a test's requests then meet
                # one process's caches, and a suite of fifty servers starts half the processes.
                args += ["--workers", "1"]
            self.port = int(args[args.index("--port") + 1])
        self.command = command
        super().__init__([sys.executable, "-m", "webui", command, *args], log_path, env)

    @property
    def url(self) -> str:
        if self.port is None:
            raise AttributeError(f"`webui {self.command}` serves no HTTP")
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 5.0) -> HttpResponse:
        return http_get(self.url + path, timeout)

    def wait_http(self, path: str = "/healthcheck", status: int = 200, timeout: float = 20.0) -> HttpResponse:
        """Poll `path` until it answers `status`; fail early, with the log, if the process exits."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            self.assert_alive(f"waiting for {path} to answer {status}")
            try:
                response = self.get(path, timeout=2.0)
            except OSError as error:
                last = repr(error)
            else:
                if response.status == status:
                    return response
                last = f"{response.status}: {response.body[:200]}"
            time.sleep(0.1)
        raise AssertionError(f"{self.url}{path} did not answer {status} in {timeout:g}s (last: {last});"
                             f" log {self.log_path}:\n{self.log_tail()}")
