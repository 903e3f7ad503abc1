"""`/healthcheck`: 200 "OK" (as Flower answers) only when the store is writable and a collector connected."""
from __future__ import annotations

from flask import Blueprint, Response

from webui.store import queries

bp = Blueprint("health", __name__)


@bp.get("/healthcheck")
def healthcheck() -> Response:
    result = queries.health()
    if result.ok:
        return Response("OK", status=200, mimetype="text/plain")
    return Response("UNHEALTHY: " + "; ".join(result.reasons), status=503, mimetype="text/plain")
