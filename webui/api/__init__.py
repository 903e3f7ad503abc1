"""The JSON API: Flower's routes (`flower_reads`, `flower_controls`), ours under `/api/v1/` (`v1`), the
OpenAPI document that describes both (`openapi`), and JSON errors for every path under `/api/`."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webui.api import errors, flower_controls, flower_reads, flower_tasks, openapi, v1, v1_alerts, v1_beat

    app.register_blueprint(flower_reads.bp)
    app.register_blueprint(flower_controls.bp)
    app.register_blueprint(flower_tasks.bp)
    app.register_blueprint(v1.bp)
    app.register_blueprint(v1_alerts.bp)
    app.register_blueprint(v1_beat.bp)
    app.register_blueprint(openapi.bp)
    errors.init_app(app)
