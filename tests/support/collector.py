"""An in-process collector for tests that don't need a separate process."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery

from tests.support.store import close_database
from tests.support.waiting import wait_for
from webui.collector.service import Collector
from webui.settings import default_settings
from webui.store.database import open_database
from webui.store.schema import upgrade


def test_settings(broker_url: str, database_url: str, **changes: Any):
    values: dict[str, Any] = {"broker": broker_url, "database": database_url, "batch_interval": 0.05,
                              "enable_events": False, "inspect_timeout": 1.0}
    values.update(changes)
    return default_settings(**values)


@contextmanager
def running_collector(app: Celery, database_url: str, *, connected: bool = True,
                      **changes: Any) -> Iterator[Collector]:
    """Start a collector for `app`'s broker on `database_url`; wait until it is subscribed; stop it after."""
    settings = test_settings(app.conf.broker_url, database_url, **changes)
    db = open_database(database_url)
    upgrade(db)
    collector = Collector(settings, app, db)
    collector.start()
    try:
        if connected:
            wait_for(lambda: collector.stats.connected, timeout=15, message="collector never connected")
        yield collector
    finally:
        collector.stop()
        close_database(db)
