"""The `webui` command and `celery … webui`: help, settings, exit codes, migrate and serve."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.bin.celery import celery as celery_group
from click.testing import CliRunner

from webui.celery_command import webui as webui_command
from webui.cli import main
from webui.serve import bind_address, gunicorn_options
from webui.settings import SETTINGS, default_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count()


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No WEBUI_* settings from the developer's shell; data in tmp_path; CELERY_BROKER_URL restored."""
    for name in list(os.environ):
        if name.startswith("WEBUI_") and not name.startswith("WEBUI_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("CELERY_BROKER_URL", "unused")  # `celery -b` and --broker set it: record, then drop
    monkeypatch.delenv("CELERY_BROKER_URL")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Celery app module in the current directory, under a name of its own."""
    name = f"webui_cli_project_{os.getpid()}_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(
        "from celery import Celery\n"
        f"app = Celery({name!r}, broker='redis://:app-password@app-host:6379/3')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield name
    sys.modules.pop(name, None)


# -- webui --help -----------------------------------------------------------------------------------


def test_help_lists_every_setting_with_its_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0

    out = capsys.readouterr().out
    for setting in SETTINGS:
        for flag in setting.flags:
            assert flag in out
        assert setting.env_var in out
        if setting.type == "bool":
            assert "--no-" + setting.long_flag[2:] in out
    for group in ("connection", "server", "collector", "sensitive data"):
        assert f"{group} settings:" in out
    assert "default: 5555" in out


# -- webui settings ---------------------------------------------------------------------------------


def test_settings_prints_each_value_with_its_source(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBUI_WORKERS", "3")

    assert main(["settings", "--port", "6000", "--broker", "redis://:hunter2@broker:6379/0"]) == 0

    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert lines["port"].split() == ["port", "6000", "(flag)"]
    assert lines["workers"].split() == ["workers", "3", "(env", "WEBUI_WORKERS)"]
    assert lines["address"].split() == ["address", "127.0.0.1", "(default)"]
    assert lines["broker"].split() == ["broker", "redis://:***@broker:6379/0", "(flag)"]
    assert "reads events from redis://:***@broker:6379/0" in lines["celery"]
    assert "hunter2" not in "".join(lines.values())


# -- errors -----------------------------------------------------------------------------------------


def test_a_bad_value_exits_2_with_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "--port", "0"]) == 2

    captured = capsys.readouterr()
    assert captured.err == "webui: error: --port: must be at least 1, got 0\n"
    assert captured.out == ""


def test_a_bad_environment_value_names_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBUI_EMBEDDED_COLLECTOR", "maybe")

    assert main(["settings"]) == 2
    assert capsys.readouterr().err.startswith("webui: error: WEBUI_EMBEDDED_COLLECTOR: expected true/false")


def test_an_unknown_option_or_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "--prot"]) == 2
    assert "webui: error: unrecognized arguments: --prot" in capsys.readouterr().err
    assert main(["settings", "--por", "80"]) == 2  # no abbreviations: flags are spelled out as documented
    assert main(["serv"]) == 2
    assert "invalid choice: 'serv'" in capsys.readouterr().err


def test_an_app_that_cannot_be_imported_exits_2(capsys: pytest.CaptureFixture[str], project: str) -> None:
    assert main(["settings", "--app", "no_such_project_x"]) == 2
    assert "webui: error: cannot load Celery app 'no_such_project_x'" in capsys.readouterr().err


def test_python_m_webui_prints_no_traceback_for_bad_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBUI_")}
    env["WEBUI_BATCH_INTERVAL"] = "5"

    done = subprocess.run([sys.executable, "-m", "webui", "migrate"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert done.stderr == "webui: error: WEBUI_BATCH_INTERVAL: must be at most 1, got 5\n"


# -- webui migrate ----------------------------------------------------------------------------------


def test_migrate_creates_the_schema_once(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/new/dir/webui.sqlite3"

    assert main(["migrate", "--database", database]) == 0
    first = capsys.readouterr().out
    assert main(["migrate", "--database", database]) == 0
    second = capsys.readouterr().out

    assert first.startswith("applied 0001_")
    assert second == "the database schema is up to date\n"
    assert (tmp_path / "new" / "dir" / "webui.sqlite3").exists()


def test_migrate_uses_the_default_database_in_the_data_directory(tmp_path: Path) -> None:
    assert main(["migrate"]) == 0
    assert (tmp_path / "data" / "celery-webui" / "webui.sqlite3").exists()


def test_an_unreachable_database_exits_1_without_showing_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    assert main(["migrate", "--database", f"postgresql://webui:hunter2@127.0.0.1:{port}/webui"]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"webui: error: database postgresql://webui:***@127.0.0.1:{port}/webui: ")
    assert "hunter2" not in err


# -- webui prune ------------------------------------------------------------------------------------


def test_prune_migrates_then_prints_each_step_and_the_total(capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/webui.sqlite3"

    assert main(["prune", "--database", database, "--log-level", "warning"]) == 0
    out = capsys.readouterr().out

    assert "SUCCESS tasks last heard of before" in out and "FAILURE tasks last heard of before" in out
    assert out.endswith("deleted 0 rows in all\n")


def test_dry_run_is_an_option_of_prune_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--dry-run"]) == 2
    assert "--dry-run is an option of prune only" in capsys.readouterr().err


# -- celery … webui ---------------------------------------------------------------------------------


def run_celery(*args: str):
    celery_group.add_command(webui_command)
    return CliRunner().invoke(celery_group, list(args), catch_exceptions=False)


def test_celery_webui_uses_celerys_app(project: str) -> None:
    result = run_celery("-A", project, "webui", "settings", "--port", "5556")

    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert lines["app"] == ["app", project, "(flag)"]
    assert lines["port"] == ["port", "5556", "(flag)"]
    assert f"celery app {project} reads events from redis://:***@app-host:6379/3" in result.stdout


def test_celery_dash_b_counts_as_the_broker_flag(project: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBUI_BROKER", "redis://from-env:6379/9")  # a flag beats the environment

    result = run_celery("-A", project, "-b", "redis://celery-flag:6379/1", "webui", "settings")

    assert result.exit_code == 0, result.output
    assert "redis://celery-flag:6379/1  (flag)" in result.stdout
    assert "reads events from redis://celery-flag:6379/1" in result.stdout


def test_a_broker_after_webui_beats_celerys(project: str) -> None:
    result = run_celery("-b", "redis://celery-flag:6379/1", "webui", "settings", "--broker", "redis://mine:6379/2")

    assert result.exit_code == 0, result.output
    assert "reads events from redis://mine:6379/2" in result.stdout


def test_celery_webui_help_is_webuis_full_help() -> None:
    result = run_celery("webui", "--help")

    assert result.exit_code == 0
    assert "--worker-offline-heartbeats" in result.stdout
    assert "usage:" in result.stdout and "webui" in result.stdout


def test_celery_webui_passes_on_the_exit_code_of_bad_settings(project: str) -> None:
    result = run_celery("-A", project, "webui", "--port", "0")

    assert result.exit_code == 2
    assert "webui: error: --port: must be at least 1, got 0" in result.stderr


def test_celery_webui_refuses_a_second_app(project: str) -> None:
    result = run_celery("-A", project, "webui", "-A", "other")

    assert result.exit_code == 2
    assert "give the app to celery only" in result.stderr


# -- webui serve ------------------------------------------------------------------------------------


def test_gunicorn_runs_threaded_workers_without_preloading() -> None:
    options = gunicorn_options(default_settings(workers=3, threads=8, port=6000, log_level="warning"))

    assert options["worker_class"] == "gthread"
    assert (options["workers"], options["threads"]) == (3, 8)
    assert options["preload_app"] is False
    assert options["bind"] == ["127.0.0.1:6000"]
    assert options["loglevel"] == "warning"
    assert options["accesslog"] is None
    assert options["control_socket_disable"] is True


def test_two_web_processes_by_default() -> None:
    assert gunicorn_options(default_settings())["workers"] == 2


def test_a_worker_leaves_what_it_loaded_out_of_garbage_collections() -> None:
    import gc

    from webui import serve

    assert gunicorn_options(default_settings())["post_worker_init"] is serve._prepare_worker
    gc.unfreeze()
    try:
        serve._freeze_loaded_objects()
        assert gc.get_freeze_count() > 10_000  # the modules, classes and functions loaded so far
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(
    ("address", "bind"),
    [("0.0.0.0", "0.0.0.0:80"), ("::", "[::]:80"), ("::1", "[::1]:80"), ("[::1]", "[::1]:80"),
     ("web", "web:80")],
)
def test_ipv6_addresses_are_bracketed(address: str, bind: str) -> None:
    assert bind_address(address, 80) == bind


FAKE_APP_RUNNER = """
import sys, types

def create_app(settings, celery_app, start_collector=None):
    from flask import Flask
    app = Flask("fake")

    @app.get("/")
    def index():  # the collector runs in a process of its own beside the workers, not in them
        return f"threads={settings.threads} broker={celery_app.conf.broker_url} in-worker={start_collector}"

    return app

# The real webui.app is not under test here: each gunicorn worker imports this one after the fork.
fake = types.ModuleType("webui.app")
fake.create_app = create_app
sys.modules["webui.app"] = fake

from webui.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_serve_migrates_then_serves_the_app_until_sigterm(tmp_path: Path) -> None:
    runner = tmp_path / "run_fake_app.py"
    runner.write_text(textwrap.dedent(FAKE_APP_RUNNER))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBUI_")}
    env.update(PYTHONPATH=str(REPO_ROOT), XDG_DATA_HOME=str(tmp_path / "data"))
    argv = [sys.executable, str(runner), "serve", "--port", str(port), "--workers", "2", "--threads", "3",
            "--broker", "redis://fake-broker:6379/0"]
    with open(tmp_path / "serve.log", "w+") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            body = _get_when_up(f"http://127.0.0.1:{port}/", process)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.seek(0)
        output = log.read()

    assert body == "threads=3 broker=redis://fake-broker:6379/0 in-worker=False", output
    assert "collector process started" in output  # and SIGTERM stopped it, though its broker never answered
    assert f"Celery WebUI: http://127.0.0.1:{port}/" in output
    assert "Using worker: gthread" in output
    assert (tmp_path / "data" / "celery-webui" / "webui.sqlite3").exists()


def _get_when_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered (exit code {process.poll()})") from None
            time.sleep(0.1)
