"""JSON errors under `/api/`: `{"error": message}` with the right status, never an HTML page or a traceback.

Routes raise `ApiError(status, message)` for what they refuse; werkzeug's own 404/405 (no such route, wrong
method) and anything unexpected (500) are answered here too, but only for API paths: pages keep theirs.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from peewee import InterfaceError
from peewee import OperationalError as DatabaseError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A refusal with its status (400 bad parameter, 404 unknown, 409, 503 broker unreachable) and reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DatabaseError, _database_error)
    app.register_error_handler(InterfaceError, _database_error)  # a connection that went away mid-request
    app.register_error_handler(500, _unexpected)


def _api_error(exc: ApiError) -> Response:
    return json_error(exc.status, exc.message)


def _http_error(exc: HTTPException) -> Any:
    if not is_api_request():
        return exc  # pages answer as they always did
    response = json_error(exc.code or 500, exc.description or exc.name)
    if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return response


def _database_error(exc: Exception) -> Any:
    # A locked or unreachable database is a temporary outage, not a bug: 503, so scripts and pages retry.
    log.warning("database error on %s: %s", request.path, exc)
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if is_api_request():
        return json_error(503, f"The database did not answer: {reason}. Try again shortly.")
    message = (f"The database did not answer ({reason}). Nothing is lost: the collector keeps the events it "
               "receives and writes them when the database is back. This page tries again in 10 seconds.")
    try:
        body = render_template("error.html", status=503, message=message, retry_in=10)
    except Exception:  # noqa: BLE001 - the page itself may need the database: say it in plain text then
        return Response(message + "\n", status=503, mimetype="text/plain", headers={"Retry-After": "10"})
    return Response(body, status=503, headers={"Retry-After": "10"})


def _unexpected(exc: Any) -> Any:
    original = getattr(exc, "original_exception", None) or exc
    if not is_api_request():
        return exc
    log.error("unexpected error on %s", request.path, exc_info=original)
    return json_error(500, f"Unexpected error ({type(original).__name__}); it is in the server's log.")
