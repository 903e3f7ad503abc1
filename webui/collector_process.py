"""`webui serve`'s embedded collector in a process of its own, forked and restarted by gunicorn's arbiter.

Inside a web worker, the collector's writer held half of that process's GIL under a busy stream (py-spy during
bench/load.py), and every request thread waited for it: one UI process at 5,000 events/s answered live pages in
0.5-1 s. Beside the workers, the collector has an interpreter of its own and the workers keep theirs for pages.

The arbiter forks it: the arbiter runs no thread of its own (gunicorn's control socket is off), so the fork copies
no half-held lock, and the child inherits the settings and the Celery app as they are, whatever built them
(`-A`, `celery -A proj webui`, `--broker`). The arbiter reaps it by pid before gunicorn's `waitpid(-1)` would,
starts it again when it exits (at most every `RESPAWN_MAX` seconds when it keeps failing), and stops it with the
workers: SIGTERM, then the collector flushes what it holds; SIGKILL only after the graceful timeout. If the
arbiter itself is killed, the kernel sends the collector SIGTERM (Linux), so it never outlives its server.
Leadership is unchanged: the collector takes the database's leader lock, so several `webui serve` processes, or
a `webui collect` elsewhere, still have one active collector per database.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from typing import Any

from celery import Celery
from gunicorn.arbiter import Arbiter

log = logging.getLogger(__name__)

RESPAWN_MIN = 1.0  # seconds between starts of a collector that keeps exiting, doubled each time up to
RESPAWN_MAX = 30.0
_PR_SET_NAME = 15
_PR_SET_PDEATHSIG = 1
PROCESS_NAME = b"webui-collector"  # what `ps -o comm`, top and /proc/PID/comm show for it (15 bytes at most)
# Not gunicorn's WORKER_BOOT_ERROR (3) or APP_LOAD_ERROR (4): an exit code its reaper takes as fatal to the server.
EXIT_FAILED = 1


class CollectorArbiter(Arbiter):
    """gunicorn's arbiter, with the collector as one more child it keeps alive."""

    def __init__(self, app: Any, settings: Any, celery_app: Celery) -> None:
        super().__init__(app)
        self.settings, self.celery_app = settings, celery_app
        self.collector_pid = 0
        self.stopping = False
        self._next_start = 0.0
        self._respawn_wait = RESPAWN_MIN

    # -- gunicorn's loop ---------------------------------------------------------------------------------------
    def manage_workers(self) -> None:
        super().manage_workers()
        self.reap_collector()
        if not self.collector_pid and not self.stopping and time.monotonic() >= self._next_start:
            self.spawn_collector()

    def reap_workers(self) -> None:
        self.reap_collector()  # by its pid, first: gunicorn's waitpid(-1) would take it for a stray worker
        super().reap_workers()

    def stop(self, graceful: bool = True) -> None:
        self.stopping = True
        deadline = time.monotonic() + self.cfg.graceful_timeout
        self._signal_collector(signal.SIGTERM if graceful else signal.SIGQUIT)
        super().stop(graceful)  # the workers, within the same graceful timeout
        while self.collector_pid and time.monotonic() < deadline:
            self.reap_collector()
            time.sleep(0.05)
        if self.collector_pid:
            log.warning("collector (pid %s) still flushing after %ss: killed", self.collector_pid,
                        self.cfg.graceful_timeout)
            self._signal_collector(signal.SIGKILL)
            self._wait_collector()

    # -- the collector's process -------------------------------------------------------------------------------
    def spawn_collector(self) -> None:
        pid = os.fork()
        if pid:
            self.collector_pid = pid
            self._next_start = time.monotonic() + self._respawn_wait
            log.info("collector process started (pid %s)", pid)
            return
        self._run_collector_child()

    def reap_collector(self) -> None:
        if not self.collector_pid:
            return
        try:
            pid, status = os.waitpid(self.collector_pid, os.WNOHANG)
        except ChildProcessError:  # reaped by gunicorn's waitpid(-1) after all: its exit is not known
            pid, status = self.collector_pid, -1
        if pid:
            self._collector_exited(status)

    def _collector_exited(self, status: int) -> None:
        pid, self.collector_pid = self.collector_pid, 0
        if self.stopping:
            return
        if status == 0:
            self._respawn_wait = RESPAWN_MIN
        else:
            self._respawn_wait = min(RESPAWN_MAX, self._respawn_wait * 2)
        self._next_start = time.monotonic() + self._respawn_wait
        log.error("collector process (pid %s) exited (%s): starting it again within %.0fs", pid,
                  _describe_status(status), self._respawn_wait)

    def _signal_collector(self, sig: int) -> None:
        if self.collector_pid:
            try:
                os.kill(self.collector_pid, sig)
            except ProcessLookupError:
                self.collector_pid = 0

    def _wait_collector(self) -> None:
        try:
            os.waitpid(self.collector_pid, 0)
        except ChildProcessError:
            pass
        self.collector_pid = 0

    def _run_collector_child(self) -> None:
        """In the forked child: become a plain process running the collector, and never return into gunicorn."""
        code = EXIT_FAILED
        try:
            for sig in (*self.SIGNALS, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)  # the arbiter's handlers would queue into its copy of itself
            for listener in self.LISTENERS:
                listener.close()
            _prctl(_PR_SET_NAME, PROCESS_NAME)
            _die_with_parent()
            from webui.collector.service import run_collector

            run_collector(self.settings, self.celery_app)
            code = 0
        except BaseException:  # noqa: BLE001 - whatever it was, it ends this process, logged, not gunicorn
            log.exception("collector process failed")
        finally:
            logging.shutdown()
            os._exit(code)


def _die_with_parent() -> None:
    """SIGTERM this process when the arbiter dies, even by SIGKILL (Linux; elsewhere nothing)."""
    if _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM)) and os.getppid() == 1:  # the arbiter died before that
        os.kill(os.getpid(), signal.SIGTERM)


def _prctl(option: int, value: int | bytes) -> bool:
    """Linux's prctl(2); False where there is none."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _describe_status(status: int) -> str:
    if status < 0:
        return "status unknown"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"
