"""`webui demo` as one command: a child that dies takes the whole demo down with it, leaving nothing running."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import psutil
import pytest

from tests.support.processes import LoggedProcess
from tests.support.services import free_port
from tests.support.waiting import wait_for


def descendants(pid: int) -> dict[int, psutil.Process]:
    try:
        return {child.pid: child for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return {}


def still_running(processes: dict[int, psutil.Process]) -> list[str]:
    """Those of `processes` that exist and are not zombies (psutil checks the start time: no reused pid)."""
    return [f"{pid}: {' '.join(p.cmdline())}" for pid, p in processes.items()
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def demo(redis_db: str, tmp_path: Path):
    process = LoggedProcess([sys.executable, "-m", "webui", "demo", "--broker", redis_db, "--port", str(free_port())],
                            tmp_path / "demo.log")
    try:
        yield process
    finally:
        process.stop(grace=15)
        print(process.log_text())


def running_demo(demo: LoggedProcess) -> dict[int, psutil.Process]:
    """Wait for the URL and for all of worker (and its pool), beat and the UI; returns the processes."""
    wait_for(lambda: demo.assert_alive("starting") or "Celery WebUI demo: http://" in demo.log_text(), timeout=60,
             interval=0.2, message="webui demo printed no URL")
    return wait_for(lambda: (found := descendants(demo.pid)) and len(found) >= 5 and found, timeout=20,
                    message="not all of worker (and its pool), beat and the UI running")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_a_closed_terminal_stops_everything_and_removes_the_temporary_directory(demo, sig):
    seen = running_demo(demo)
    workdir = Path(demo.log_text().split("logs in ", 1)[1].split()[0])
    assert workdir.is_dir()
    demo.kill(sig)

    assert demo.wait(timeout=30) == 0
    assert still_running(seen) == []
    assert not workdir.exists()


def test_a_dead_worker_stops_the_demo_with_its_last_words_and_leaves_no_process(demo):
    seen = running_demo(demo)
    (worker,) = [p for p in seen.values() if p.ppid() == demo.pid and " worker " in " ".join(p.cmdline()) + " "]
    assert not any("redis-server" in " ".join(p.cmdline()) for p in seen.values())  # a broker was given
    worker.send_signal(signal.SIGKILL)  # its pool processes are orphaned: the demo must sweep them too

    assert demo.wait(timeout=30) == 1
    assert "the worker exited with status -9" in demo.log_text()
    assert still_running(seen) == []


def test_a_broker_other_than_redis_is_refused_before_anything_starts(tmp_path):
    demo = LoggedProcess([sys.executable, "-m", "webui", "demo", "--broker", "amqp://guest@127.0.0.1//"],
                         tmp_path / "demo.log")
    assert demo.wait(timeout=30) == 2
    assert "the demo app needs Redis" in demo.log_text()
