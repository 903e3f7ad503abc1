"""Flower's request parameters: read from the query string or a form body (as Tornado's `get_argument`),
converted, and refused with a 400 that names the parameter."""
from __future__ import annotations

import math
from typing import Any

from flask import request

from webui.api.errors import ApiError

_TRUE = ("1", "true", "yes", "on", "y", "t")
_FALSE = ("0", "false", "no", "off", "n", "f", "")


# A path id converter: ids fit the database's 64-bit integers, so a longer number is simply unknown (404), not
# an overflow error (500).
ID = "int(max=9223372036854775807)"


def text(name: str, default: str | None = None, *, max_length: int = 1000) -> str | None:
    value = request.values.get(name)
    if value is None:
        return default
    value = value.strip()
    if len(value) > max_length:
        raise ApiError(400, f"'{name}' is at most {max_length} characters; got {len(value)}.")
    if any(ord(c) < 32 for c in value):
        raise ApiError(400, f"'{name}' cannot contain control characters.")
    return value


def flag(name: str) -> bool:
    value = (text(name) or "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(400, f"'{name}' must be true or false (1 or 0); got {value!r}.")


def integer(name: str, default: int | None, low: int, high: int) -> int | None:
    return parse_integer(text(name), name, default, low, high)


def parse_integer(value: str | None, name: str, default: int | None, low: int, high: int) -> int | None:
    """`value` as a whole number from `low` to `high` (`default` when empty), else a 400 naming `name`."""
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"'{name}' must be a whole number; got {value!r}.") from None
    if not low <= number <= high:
        raise ApiError(400, f"'{name}' must be between {low} and {high}; got {number}.")
    return number


def number(name: str, default: float | None, low: float, high: float) -> float | None:
    return parse_number(text(name), name, default, low, high)


def parse_number(value: str | None, name: str, default: float | None, low: float, high: float) -> float | None:
    """`value` as a number from `low` to `high` (`default` when empty), else a 400 naming `name`."""
    if value in (None, ""):
        return default
    try:
        result = float(value)
    except ValueError:
        raise ApiError(400, f"'{name}' must be a number; got {value!r}.") from None
    if math.isnan(result) or not low <= result <= high:
        raise ApiError(400, f"'{name}' must be a number from {low:g} to {high:g}; got {value!r}.")
    return result


def json_body() -> dict[str, Any]:
    """The request's JSON object (an empty body is `{}`); anything else is a 400."""
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object, e.g. {\"args\": [1, 2], \"kwargs\": {}}.")
    return body
