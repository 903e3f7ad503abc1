"""A real nginx (Debian's package) in front of a `webui serve`, configured by the shipped example itself.

`start_nginx` copies docker/nginx/celery-webui.conf with only its `listen` port and upstream port changed,
wraps it in a main config of its own (pid, logs and temp paths in the test's directory, `daemon off`), and
runs nginx as a child of the test until `stop()`.
"""
from __future__ import annotations

import getpass
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support.processes import REPO_ROOT, HttpResponse, LoggedProcess, WebuiProcess, http_get
from tests.support.services import free_port, unavailable
from tests.support.waiting import wait_for

EXAMPLE = REPO_ROOT / "docker" / "nginx" / "celery-webui.conf"
PREFIX = "/celery"

MAIN_CONFIG = """\
daemon off;
user {user};
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/celery-webui.conf;
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def example_config(listen_port: int, webui_port: int) -> str:
    """The shipped example with only its two ports changed (each replaced exactly once)."""
    text = EXAMPLE.read_text()
    for old, new in (("listen 80;", f"listen 127.0.0.1:{listen_port};"),
                     ("server 127.0.0.1:5555;", f"server 127.0.0.1:{webui_port};")):
        assert text.count(old) == 1, f"{EXAMPLE} should hold {old!r} exactly once"
        text = text.replace(old, new)
    return text


class Nginx:
    def __init__(self, directory: Path, webui_port: int) -> None:
        binary = nginx_binary()
        assert binary is not None, "nginx is not installed"
        self.directory = directory
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "celery-webui.conf").write_text(example_config(self.port, webui_port))
        (directory / "nginx.conf").write_text(MAIN_CONFIG.format(dir=directory, user=getpass.getuser()))
        self.process = LoggedProcess([binary, "-p", str(directory), "-c", str(directory / "nginx.conf"),
                                      "-e", str(directory / "error.log")], directory / "nginx.out")
        wait_for(self._listening, timeout=10, interval=0.05, message=f"nginx never listened on {self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listening(self) -> bool:
        self.process.assert_alive(f"starting nginx; its error log:\n{self.log_tail()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def log_tail(self) -> str:
        error_log = self.directory / "error.log"
        return (self.process.log_tail() + "\n" + (error_log.read_text() if error_log.exists() else "")).strip()

    def stop(self) -> None:
        self.process.stop(grace=5)


class ProxiedWebui:
    """A `webui serve --url-prefix /celery --proxy-count 1` and the nginx in front of it."""

    def __init__(self, webui: WebuiProcess, nginx: Nginx, broker_url: str) -> None:
        self.webui = webui
        self.nginx = nginx
        self.broker_url = broker_url
        self.url = nginx.url + PREFIX  # no trailing slash: url + "/tasks"

    def get(self, path: str, timeout: float = 5.0) -> HttpResponse:
        return http_get(self.nginx.url + path, timeout)


def serve_behind_nginx(run_webui: Callable[..., WebuiProcess], broker_url: str, database_url: str,
                       directory: Path, *args: str) -> Iterator[ProxiedWebui]:
    """Start both (the webui healthy, `args` added to its flags), yield them, stop nginx (run_webui stops the
    webui)."""
    if nginx_binary() is None:
        unavailable("nginx is not installed: apt-get install nginx to run the reverse proxy tests")
    webui = run_webui("serve", "--broker", broker_url, "--database", database_url, "--batch-interval", "0.1",
                      "--no-enable-events", "--url-prefix", PREFIX, "--proxy-count", "1", *args)
    webui.wait_http(PREFIX + "/healthcheck", 200, timeout=30)
    nginx = Nginx(directory, webui.port or 0)
    try:
        yield ProxiedWebui(webui, nginx, broker_url)
    finally:
        nginx.stop()
        print(f"---- nginx, error log {directory / 'error.log'}:")
        print(nginx.log_tail())
