"""The Celery app the monitor talks through: the user's own (`-A/--app`), or a bare one for `--broker`."""

from __future__ import annotations

import logging
import os
import sys
import traceback

from celery import Celery
from celery.app.utils import find_app

from webui.settings import DEFAULT_BROKER, Settings, SettingsError, mask_url_password

logger = logging.getLogger(__name__)


def load_celery_app(settings: Settings) -> Celery:
    """The app named by `settings.app` (resolved like `celery -A`), with `settings.broker` applied.

    The app's `broker_transport_options` are left alone on purpose: broadcasts from the monitor must
    use the same ones as the workers (a different Redis `visibility_timeout`, for one, breaks them).
    """
    if settings.app is None:
        app = Celery("webui", broker=DEFAULT_BROKER)
    else:
        app = import_celery_app(settings.app)
    if settings.broker:
        override_broker(app, settings.broker)
    return app


def import_celery_app(name: str) -> Celery:
    """Import `proj`, `proj.celery` or `proj:app` the way `celery -A` does, from the current directory."""
    # Keep the current directory importable for good, as the celery command does: the project's own
    # modules (tasks, custom serializers) get imported later, not only while finding the app.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        app = find_app(name)
    except ModuleNotFoundError as exc:
        if exc.name in _module_prefixes(name):
            raise SettingsError(
                f"cannot load Celery app {name!r}: no module named {exc.name!r} "
                f"(looked in the current directory {cwd} and on sys.path)"
            ) from exc
        raise SettingsError(f"cannot load Celery app {name!r}: {_describe(exc)}") from exc
    except AttributeError as exc:
        raise SettingsError(
            f"cannot load Celery app {name!r}: {_describe(exc)}; name the app explicitly, "
            f"for example {name.split(':')[0]}:app"
        ) from exc
    except Exception as exc:
        raise SettingsError(f"cannot load Celery app {name!r}: {_describe(exc)}") from exc
    if not isinstance(app, Celery):
        raise SettingsError(f"{name!r} is not a Celery app but a {type(app).__name__}")
    return app


def override_broker(app: Celery, url: str) -> None:
    """Point the app's `broker_url` at `url` (only `broker_url`: read/write URLs are the app's own)."""
    app.conf.broker_url = url
    # Celery prefers CELERY_BROKER_URL over the configured broker_url; keep them in step, as `celery -b` does.
    if "CELERY_BROKER_URL" in os.environ:
        os.environ["CELERY_BROKER_URL"] = url
    for name in ("broker_read_url", "broker_write_url"):
        if os.environ.get(f"CELERY_{name.upper()}") or app.conf.get(name):
            logger.warning("the app sets %s, which --broker does not change", name)


def safe_broker_url(app: Celery) -> str:
    """The broker URL the monitor reads events from, password masked."""
    with app.connection_for_read() as connection:
        # kombu's own masking shows ":**@" even when there is no password; ours masks only a real one.
        return mask_url_password(connection.as_uri(include_password=True))


def _module_prefixes(name: str) -> set[str]:
    parts = name.split(":")[0].split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
