from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.store import StoreReader, close_database
from webui.store.database import bind_models, open_database
from webui.store.schema import upgrade


@pytest.fixture
def store(database_url: str) -> Iterator[StoreReader]:
    """Reads what the collector wrote to `database_url`."""
    reader = StoreReader(database_url)
    yield reader
    reader.close()


@pytest.fixture
def db(database_url: str) -> Iterator[Any]:
    """`database_url` opened, migrated, bound to the models and connected, as a web process has it."""
    database = open_database(database_url)
    upgrade(database)
    bind_models(database)
    with database.connection_context():
        yield database
    close_database(database)
