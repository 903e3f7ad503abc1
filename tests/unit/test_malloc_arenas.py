"""`webui serve` caps glibc's malloc arenas before gunicorn forks, unless the operator set MALLOC_ARENA_MAX."""
from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_cap_applies_in_a_fresh_process_and_the_environment_wins() -> None:
    code = "from webui.serve import limit_malloc_arenas; print(limit_malloc_arenas())"
    applied = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PATH": "/usr/bin:/bin"})
    assert applied.stdout.strip() == "True"
    kept = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "MALLOC_ARENA_MAX": "4"})
    assert kept.stdout.strip() == "False"

