"""Which Celery app the monitor uses: the project's own (`-A`), with `--broker` applied, or a bare one."""

from __future__ import annotations

import itertools
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from webui.celery_app import load_celery_app, safe_broker_url
from webui.settings import DEFAULT_BROKER, SettingsError, default_settings

_names = itertools.count()

APP_MODULE = """
from celery import Celery

app = Celery("{name}", broker="redis://:app-password@app-host:6379/3")
app.conf.broker_transport_options = {{"visibility_timeout": 4321}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Factory: write a module (or package) into a fresh current directory; returns its unique name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_celery_app adds the cwd for good
    # Celery reads CELERY_BROKER_URL before an app's broker_url; set and remove so it is restored afterwards.
    monkeypatch.setenv("CELERY_BROKER_URL", "unused")
    monkeypatch.delenv("CELERY_BROKER_URL")
    written: list[str] = []

    def write(source: str = APP_MODULE, package: bool = False) -> str:
        name = f"webui_test_project_{os.getpid()}_{next(_names)}"
        code = textwrap.dedent(source).format(name=name)
        if package:
            (tmp_path / name).mkdir()
            (tmp_path / name / "__init__.py").write_text("")
            (tmp_path / name / "celery.py").write_text(code)
        else:
            (tmp_path / f"{name}.py").write_text(code)
        written.append(name)
        return name

    yield write
    for module in [m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in written)]:
        del sys.modules[module]


def test_it_loads_the_app_from_the_current_directory_keeping_its_transport_options(project) -> None:
    name = project()

    app = load_celery_app(default_settings(app=name))

    assert app.main == name
    assert app.conf.broker_transport_options == {"visibility_timeout": 4321}
    assert app.conf.broker_url == "redis://:app-password@app-host:6379/3"


@pytest.mark.parametrize("suffix", ["", ":app", ".app"])
def test_it_resolves_the_app_like_celery_dash_a(project, suffix: str) -> None:
    name = project()

    assert load_celery_app(default_settings(app=name + suffix)).main == name


def test_it_finds_the_app_in_a_packages_celery_module(project) -> None:
    name = project(package=True)

    assert load_celery_app(default_settings(app=name)).main == name


def test_broker_overrides_only_the_broker_url(project) -> None:
    name = project()

    app = load_celery_app(default_settings(app=name, broker="redis://other:6379/5"))

    assert app.conf.broker_url == "redis://other:6379/5"
    assert app.conf.broker_transport_options == {"visibility_timeout": 4321}
    assert safe_broker_url(app) == "redis://other:6379/5"


def test_broker_wins_over_celery_broker_url_in_the_environment(project, monkeypatch) -> None:
    name = project()
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://from-env:6379/1")

    app = load_celery_app(default_settings(app=name, broker="redis://flag:6379/2"))

    assert app.conf.broker_url == "redis://flag:6379/2"


def test_without_app_or_broker_it_uses_local_redis(project) -> None:
    app = load_celery_app(default_settings())

    assert app.conf.broker_url == DEFAULT_BROKER


def test_a_bare_broker_needs_no_app(project) -> None:
    app = load_celery_app(default_settings(broker="amqp://guest:guest@rabbit:5672//"))

    assert safe_broker_url(app) == "amqp://guest:***@rabbit:5672//"


def test_safe_broker_url_masks_the_password(project) -> None:
    app = load_celery_app(default_settings(app=project()))

    assert safe_broker_url(app) == "redis://:***@app-host:6379/3"


def test_a_missing_module_is_a_settings_error(project) -> None:
    with pytest.raises(SettingsError, match=r"cannot load Celery app 'no_such_project_x': no module named"):
        load_celery_app(default_settings(app="no_such_project_x"))


def test_an_error_inside_the_module_is_reported_with_where_it_happened(project) -> None:
    name = project("import no_such_dependency_x\n")

    with pytest.raises(SettingsError) as caught:
        load_celery_app(default_settings(app=name))
    message = str(caught.value)
    assert "ModuleNotFoundError: No module named 'no_such_dependency_x'" in message
    assert f"{name}.py:1" in message


def test_a_module_without_an_app_gets_a_hint(project) -> None:
    name = project("VALUE = 1\n")

    with pytest.raises(SettingsError, match=rf"for example {name}:app"):
        load_celery_app(default_settings(app=name))


def test_something_that_is_not_a_celery_app_is_refused(project) -> None:
    name = project("VALUE = 1\n")

    with pytest.raises(SettingsError, match="is not a Celery app but a int"):
        load_celery_app(default_settings(app=f"{name}:VALUE"))
