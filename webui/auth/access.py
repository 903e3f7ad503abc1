"""`@requires("operator")` on a view: the caller's role must reach it, and controls stop in read-only mode.

Refusals are 403 with the reason, and audited: who tried what.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from webui import audit
from webui.auth import roles
from webui.auth.gate import config, error_response

F = TypeVar("F", bound=Callable[..., Any])


def requires(role: str, *, control: bool = True) -> Callable[[F], F]:
    """Decorator: `role` or higher; with `control`, also refused in read-only mode."""
    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            identity = g.get("identity")
            action = request.endpoint or view.__name__
            if control and config().read_only:
                audit.record(action, request.path, "refused", reason="read-only mode")
                return error_response(403, "This instance is read-only: controls are switched off.")
            if identity is None or not roles.at_least(identity.role, role):
                audit.record(action, request.path, "refused", reason=f"needs {role}")
                have = identity.role if identity else "none"
                return error_response(403, f"This needs the {role} role; yours is {have}.")
            return view(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate
