"""The Flask application factory."""
from __future__ import annotations

import atexit
import logging
from typing import Any

from celery import Celery
from flask import Flask, Response, request
from peewee import DatabaseError, InterfaceError

from webui import paths, proxy, request_lane
from webui.auth import gate as auth_gate
from webui.auth import oauth
from webui.celery_app import load_celery_app
from webui.store.database import bind_models, open_database
from webui.views import formatting
from webui.views import live as live_socket

log = logging.getLogger(__name__)


def create_app(settings: Any, celery_app: Celery | None = None, *, start_collector: bool | None = None) -> Flask:
    """Build the app for `settings`; start the embedded collector unless told otherwise."""
    app = Flask("webui", template_folder=paths.TEMPLATES_DIR, static_folder=paths.STATIC_DIR)
    app.config["WEBUI_SETTINGS"] = settings
    proxy.init_app(app, settings)  # X-Forwarded-* (only from proxy_count proxies) and url_prefix
    # The monitored Celery app (from -A or --broker): the collector and the broker page use it. Building it
    # imports the user's module but connects to nothing.
    celery_app = celery_app or load_celery_app(settings)
    app.extensions["webui_celery_app"] = celery_app
    db = open_database(settings.database)
    bind_models(db)
    app.config["WEBUI_DATABASE"] = db
    _manage_connections(app, db)
    auth_gate.init_app(app, settings, db)
    oauth.init_app(app, settings)  # the single sign-on provider, if one is configured
    lane = settings.read_concurrency  # reads take turns once the gate has let them in
    request_lane.init_app(app, request_lane.default_width(db) if lane is None else lane)
    _register_views(app)
    live_socket.init_app(app)
    formatting.init_app(app)
    _secure_headers(app)
    if start_collector is None:
        start_collector = settings.embedded_collector
    if start_collector:
        _start_collector(app, settings, celery_app, db)
    return app


def _manage_connections(app: Flask, db: Any) -> None:
    @app.before_request
    def connect() -> None:
        try:
            db.connect(reuse_if_open=True)
        except (DatabaseError, InterfaceError):
            # Down for now: the route's first query tries again and fails in its own way — /healthcheck says
            # UNHEALTHY as Flower does, pages and the API answer 503 (webui.api.errors).
            pass

    @app.teardown_request
    def close(_exc: BaseException | None) -> None:
        if not db.is_closed():
            db.close()


def _register_views(app: Flask) -> None:
    from webui.views import admin, broker, health, home, login, task_detail, tasks, workers

    app.register_blueprint(home.bp)
    app.register_blueprint(login.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(broker.bp)
    app.register_blueprint(task_detail.bp)
    app.register_blueprint(tasks.bp)
    app.register_blueprint(workers.bp)
    from webui.views import queues

    app.register_blueprint(queues.bp)
    from webui.views import beat, beat_controls

    app.register_blueprint(beat.bp)
    app.register_blueprint(beat_controls.bp)  # run now, pause/resume, skip
    from webui.views import events

    app.register_blueprint(events.bp)
    from webui.views import controls

    app.register_blueprint(controls.bp)
    from webui.views import alerts, doctor

    app.register_blueprint(alerts.bp)  # incidents, rules, channels, maintenance windows
    app.register_blueprint(doctor.bp)
    from webui.views import metrics, probes

    app.register_blueprint(probes.bp)
    metrics.init_app(app, app.config["WEBUI_SETTINGS"])  # /metrics; public only with metrics_public
    from webui import api

    api.init_app(app)  # Flower's routes, /api/v1, the OpenAPI document, JSON errors under /api/


def _start_collector(app: Flask, settings: Any, celery_app: Celery, db: Any) -> None:
    from webui.collector.service import Collector

    collector = Collector(settings, celery_app, db)
    collector.start()
    app.extensions["webui_collector"] = collector
    atexit.register(collector.stop)  # flush buffered events when the worker process exits


# Scripts and styles come only from static/ (no inline script, no CDN); htmx needs no eval.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


def _secure_headers(app: Flask) -> None:
    @app.after_request
    def add_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.headers.get("HX-Request"):
            response.headers.add("Vary", "HX-Request")
        return response
