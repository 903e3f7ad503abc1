"""Import every detector module so each registers itself in webui.detect.registry."""
from __future__ import annotations

from webui.detect import (  # noqa: F401 - each registers its detectors
    beat,
    doctor,
    queues,
    rates,
    tasks_duplicate,
    tasks_lost,
    tasks_stalled,
    workers,
)
