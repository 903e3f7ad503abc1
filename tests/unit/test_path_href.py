"""Row links built once per request give exactly what url_for gives, whatever the task id or hostname."""
from __future__ import annotations

from pathlib import Path

import pytest
from flask import url_for

from webui.app import create_app
from webui.settings import load_settings
from webui.views.formatting import path_href

VALUES = ["3f1c-uuid", "with space", "a/b/c", "x?y#z", "100%", "celery@host.example", "ünï©ødé", "'\"<>&",
          "-", "webui-path-href-marker"]


@pytest.fixture
def app(tmp_path: Path):
    settings = load_settings({"database": f"sqlite:///{tmp_path / 'h.sqlite3'}", "url_prefix": "/mon"}, environ={})
    app = create_app(settings, start_collector=False)
    yield app
    app.config["WEBUI_DATABASE"].close_all()


@pytest.mark.parametrize("value", VALUES)
def test_it_builds_what_url_for_builds(app, value):
    with app.test_request_context("/mon/tasks", base_url="http://monitor.example/"):
        for _ in range(2):  # built, then from the request's cache
            assert path_href("task.detail", task_id=value) == url_for("task.detail", task_id=value)
            assert path_href("workers.detail", hostname=value) == url_for("workers.detail", hostname=value)
