"""Serve the web UI under gunicorn: `gthread` workers, so WebSockets can hold a thread each, and the embedded
collector in a process of its own beside them (webui.collector_process)."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
from typing import Any

from celery import Celery
from gunicorn.app.base import BaseApplication

from webui.celery_app import safe_broker_url
from webui.proxy import normalize_prefix
from webui.settings import Settings, SettingsError, mask_url_password

logger = logging.getLogger(__name__)

GRACEFUL_TIMEOUT = 5  # seconds; open WebSockets would otherwise hold shutdown for gunicorn's 30 s
# glibc gives each thread that allocates concurrently an arena of its own, up to 8 per core, and memory freed
# into one is not reused by the others: a gthread worker's requests (an SQLite page cache each, up to 32 MB)
# left 200+ MB behind at 1M tasks, growing with every thread that served one. Two arenas: 150 MB, flat.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt() parameter number


def migrate_database(settings: Settings) -> list[str]:
    """Create or upgrade the schema, and check the alert rules file; returns the migrations applied. Closes the
    connection afterwards, so no database handle crosses gunicorn's fork."""
    from webui.store.database import bind_models, open_database
    from webui.store.schema import upgrade

    db = open_database(settings.database)
    try:
        applied = upgrade(db)
        if settings.alert_rules_file:
            bind_models(db)
            check_rules_file(settings.alert_rules_file)
        return applied
    finally:
        # A pool only parks a closed connection; empty it so no socket is inherited by the workers.
        close_all = getattr(db, "close_all", None)
        if callable(close_all):
            close_all()
        else:
            db.close()


def check_rules_file(path: str) -> None:
    """Refuse to start on a rules file with mistakes: a rule silently missing is an alert that never comes."""
    from webui.alerts.rules import RuleError, read_rules_file

    try:
        read_rules_file(path)
    except RuleError as exc:
        raise SettingsError(f"alert_rules_file: {exc}") from exc


def run_server(settings: Settings, celery_app: Celery, *, migrate: bool = True) -> None:
    """Migrate (once, before any worker starts), then run gunicorn until SIGINT/SIGTERM."""
    if migrate:
        migrate_database(settings)
    limit_malloc_arenas()  # before gunicorn forks its workers: they inherit it
    url = public_url(settings.address, settings.port).rstrip("/") + normalize_prefix(settings.url_prefix) + "/"
    print(f"Celery WebUI: {url}", file=sys.stderr, flush=True)
    logger.info("broker: %s", safe_broker_url(celery_app))
    logger.info("database: %s", mask_url_password(settings.database))
    WebUIApplication(settings, celery_app).run()


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process and its forks; False where it does not apply (not glibc, or
    MALLOC_ARENA_MAX is set in the environment: the operator's choice stands)."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others: no such library or call
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


class WebUIApplication(BaseApplication):
    """gunicorn configured from our settings; each worker builds its own Flask app after the fork."""

    def __init__(self, settings: Settings, celery_app: Celery) -> None:
        self.settings = settings
        self.celery_app = celery_app
        super().__init__(prog="webui")

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings).items():
            if key in self.cfg.settings:  # control_socket_disable only exists in gunicorn >= 25.1
                self.cfg.set(key, value)

    def load(self) -> Any:
        from webui.app import create_app

        # The embedded collector runs beside the workers, in a process of its own (webui.collector_process).
        return create_app(self.settings, self.celery_app, start_collector=False)

    def run(self) -> None:
        if not self.settings.embedded_collector:
            super().run()
            return
        from webui.collector_process import CollectorArbiter

        try:
            CollectorArbiter(self, self.settings, self.celery_app).run()
        except RuntimeError as exc:  # as gunicorn's own run(): a configuration it refuses
            print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
            sys.exit(1)


def gunicorn_options(settings: Settings) -> dict[str, object]:
    """The gunicorn settings we run with."""
    return {
        "bind": [bind_address(settings.address, settings.port)],
        "worker_class": "gthread",
        "workers": settings.workers,
        "threads": settings.threads,
        "preload_app": False,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level,
        "proc_name": "celery-webui",
        # gunicorn >= 25.1 opens a control socket at one fixed path per user by default; a second
        # instance (or any other gunicorn) would fight over it.
        "control_socket_disable": True,
        # gunicorn would believe X-Forwarded-Proto and SCRIPT_NAME headers from 127.0.0.1 on its own; only
        # webui.proxy (proxy_count) decides which forwarded headers to trust.
        "forwarded_allow_ips": "",
        "secure_scheme_headers": {},
        "post_worker_init": _prepare_worker,
    }


def _prepare_worker(worker: Any) -> None:
    _freeze_loaded_objects()
    _close_live_sockets_on_term(worker)


def _freeze_loaded_objects() -> None:
    """Leave what the worker has loaded so far out of Python's garbage collections.

    The app, Celery, Jinja, peewee and the rest make up most of the worker's objects, and none of them is ever
    garbage. A full collection walks every object and stops every thread while it does. Under load those
    collections took 130-170 ms each, and every request under way waited for them. Once frozen, they take
    2-26 ms (docs/performance.md)."""
    gc.collect()
    gc.freeze()


def _close_live_sockets_on_term(worker: Any) -> None:
    """Chain gunicorn's SIGTERM handler so open live sockets close at once instead of holding the stop."""
    import signal

    from webui.live import SHUTTING_DOWN

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        SHUTTING_DOWN.set()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def bind_address(address: str, port: int) -> str:
    """`host:port` for gunicorn, with IPv6 addresses bracketed."""
    if ":" in address and not address.startswith("["):
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def public_url(address: str, port: int) -> str:
    """The URL to print; a wildcard address is shown as this host's name."""
    host = os.uname().nodename if address in ("0.0.0.0", "::", "[::]") else address
    return f"http://{bind_address(host, port)}/"

