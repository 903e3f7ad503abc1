from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.store import StoreReader


@pytest.fixture
def store(database_url: str) -> Iterator[StoreReader]:
    """Reads what the collector wrote to `database_url`."""
    reader = StoreReader(database_url)
    yield reader
    reader.close()
