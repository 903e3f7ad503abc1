"""The JSON API: Flower's routes (`flower_reads`, `flower_controls`), ours under `/api/v1/` (`v1`), the
OpenAPI document that describes both (`openapi`), and JSON errors for every path under `/api/`."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webui.api import errors, flower_reads

    app.register_blueprint(flower_reads.bp)
    errors.init_app(app)
