"""JSON for the collector's hot path: orjson (C, 2-3x the standard library), with a safe fallback.

Chosen because decoding event batches and encoding each event's data are among the largest costs of
ingest (see docs/performance.md). Anything orjson refuses (integers beyond 64 bits, NaN handling) falls
back to the standard library, so no input is lost for being unusual.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS
_fallback_encode = json.JSONEncoder(separators=(",", ":"), default=repr).encode


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError (orjson.JSONDecodeError is one) on anything that is not."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        if isinstance(data, bytes | bytearray):
            raise
        return json.loads(data)  # e.g. a str with lone surrogates, which orjson refuses and json accepts


def loads_as(text: str | None, kind: type) -> Any:
    """Stored JSON that should be a `kind` (list, dict): that value, or an empty one when absent or corrupt."""
    try:
        value = loads(text) if text else kind()
    except ValueError:
        return kind()
    return value if isinstance(value, kind) else kind()


def dumps(value: Any) -> str:
    """Compact JSON text; values JSON cannot hold are written as their repr()."""
    try:
        return orjson.dumps(value, default=repr, option=_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return _fallback_encode(value)
