"""What `pip install celery-webui` gets: the package with its templates and static files, the `webui` script
and the `celery webui` sub-command, working from outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSET_DIRS = ("templates", "static")


def run(*argv: str | Path, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(arg) for arg in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def repo_assets() -> list[str]:
    """Files under the repo's templates/ and static/, as paths relative to the repo root."""
    return sorted(
        path.relative_to(REPO_ROOT).as_posix()
        for directory in ASSET_DIRS
        for path in (REPO_ROOT / directory).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the test environment already has hatchling, and the test must work offline.
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out, REPO_ROOT)
    (built,) = out.glob("celery_webui-*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--target", target, wheel)
    return target


def outside_env(site: Path) -> dict[str, str]:
    """An environment where `webui` can only come from `site` (dependencies come from this interpreter)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBUI_") and k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    return env


def test_the_wheel_ships_templates_and_static_files_inside_the_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assets = repo_assets()

    assert any(a.startswith("templates/") for a in assets), "the repo has no templates/ files yet"
    assert any(a.startswith("static/") for a in assets), "the repo has no static/ files yet"
    missing = [a for a in assets if f"webui/{a}" not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert "webui/cli.py" in names
    assert not any(n.startswith(("templates/", "static/", "tests/")) for n in names)


def test_the_wheel_declares_the_script_and_the_celery_sub_command(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = archive.read(entry_points).decode()

    assert "[console_scripts]\nwebui = webui.cli:run" in text
    assert "[celery.commands]\nwebui = webui.celery_command:webui" in text


def test_the_installed_package_runs_from_outside_the_repo(site: Path, tmp_path: Path) -> None:
    env = outside_env(site)

    where = run(sys.executable, "-c", "import webui; print(webui.__file__)", cwd=tmp_path, env=env)
    assert Path(where.strip()).is_relative_to(site)
    assert "--broker" in run(sys.executable, "-m", "webui", "--help", cwd=tmp_path, env=env)
    assert (site / "webui" / "templates").is_dir() and (site / "webui" / "static").is_dir()


def test_the_installed_package_adds_webui_to_celery(site: Path, tmp_path: Path) -> None:
    env = outside_env(site)

    assert "webui" in run(sys.executable, "-m", "celery", "--help", cwd=tmp_path, env=env)
    assert "--worker-offline-heartbeats" in run(sys.executable, "-m", "celery", "webui", "--help",
                                                cwd=tmp_path, env=env)


def test_the_sdist_carries_the_assets_and_builds_the_same_wheel(tmp_path: Path) -> None:
    run(sys.executable, "-m", "hatchling", "build", "--target", "sdist", "--directory", tmp_path)
    (sdist,) = tmp_path.glob("celery_webui-*.tar.gz")
    with tarfile.open(sdist) as archive:
        root = archive.getnames()[0].split("/")[0]
        names = set(archive.getnames())
        archive.extractall(tmp_path / "unpacked", filter="data")
    assets = repo_assets()
    assert assets and all(f"{root}/{a}" in names for a in assets)

    out = tmp_path / "from-sdist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out,
        tmp_path / "unpacked" / root)
    (wheel,) = out.glob("*.whl")
    wheel_names = set(zipfile.ZipFile(wheel).namelist())
    assert all(f"webui/{a}" in wheel_names for a in assets)
