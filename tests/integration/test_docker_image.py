"""docker/Dockerfile's steps, run without Docker (CI can't run it): the image's filesystem is a temporary
directory, its COPY and RUN lines are carried out there in order (RUN only through docker/build-steps.sh, the
script the Dockerfile itself calls), then its ENTRYPOINT serves with its ENV and its HEALTHCHECK must pass.

A RUN line this test does not know how to carry out fails it, so the Dockerfile cannot grow a step the test
silently skips.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT, LoggedProcess, child_env, http_get
from tests.support.services import free_port
from tests.support.waiting import wait_for
from webui.auth.passwords import hash_password

DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
# Only these run outside the script: the user and the data directory's owner exist in the image alone.
DOCKER_ONLY = ("useradd",)


@dataclass
class Instruction:
    stage: int  # 0: the builder, 1: the final image
    keyword: str
    args: str


def instructions(text: str = "") -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    text = text or DOCKERFILE.read_text()
    logical = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", text)
    found, stage = [], -1
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        found.append(Instruction(stage, keyword.upper(), args.strip()))
    return found


def final(keyword: str) -> list[str]:
    return [i.args for i in instructions() if i.stage == 1 and i.keyword == keyword]


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in final("ENV"):
        for pair in shlex.split(args):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


class ImageRoot:
    """The image's filesystem as a directory: /opt/x is root/opt/x."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, image_path: str) -> Path:
        assert image_path.startswith("/"), f"{image_path!r}: the Dockerfile should use absolute paths"
        return self.root / image_path.lstrip("/")

    def map_args(self, args: list[str]) -> list[str]:
        return [str(self.path(a)) if a.startswith("/") else a for a in args]

    def copy(self, args: str) -> None:
        *sources, target = shlex.split(args)
        assert not any(s.startswith("--") for s in sources), f"COPY {args}: options are not carried out here"
        destination = self.path(target)
        for source in sources:
            origin = REPO_ROOT / source
            into = destination / origin.name if target.endswith("/") else destination
            into.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(origin, into, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(origin, into)

    def run(self, args: str) -> None:
        command = re.sub(r"--mount=\S+\s*", "", args)
        for part in command.split("&&"):
            words = shlex.split(part)
            if words[0] == "build-steps":
                script = self.path("/usr/local/bin/build-steps")
                done = subprocess.run(["sh", str(script), *self.map_args(words[1:])], capture_output=True,
                                      text=True, timeout=400, env=child_env({"PYTHON": sys.executable}))
                assert done.returncode == 0, f"build-steps {words[1]} failed:\n{done.stdout}\n{done.stderr}"
            elif words[0] == "rm":
                self.path(words[-1]).unlink()
            elif words[0] == "install" and "-d" in words:
                self.path(words[-1]).mkdir(parents=True, exist_ok=True)
            else:
                assert words[0] in DOCKER_ONLY, f"RUN {part.strip()!r}: this test does not know how to run it"

    def build(self) -> None:
        for instruction in instructions():
            if instruction.keyword == "COPY" and "--from" not in instruction.args:
                self.copy(instruction.args)
            elif instruction.keyword == "RUN":
                self.run(instruction.args)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> ImageRoot:
    root = ImageRoot(tmp_path_factory.mktemp("image"))
    root.build()
    return root


def test_the_image_is_pinned_multi_stage_non_root_and_exposes_its_port() -> None:
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    froms = [i.args for i in instructions() if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]
    # Build tools stay in the builder: the final stage installs no system packages and copies no wheel.
    final_runs = " ".join(final("RUN"))
    assert "apt-get" not in final_runs and "pip wheel" not in final_runs
    (user,) = final("USER")
    assert user not in ("root", "0") and f"--uid {final_uid(final_runs)}" in final_runs
    env = final_env()
    assert final("EXPOSE") == [env["WEBUI_PORT"]]
    (volume,) = final("VOLUME")
    database = env["WEBUI_DATABASE"].removeprefix("sqlite:///")
    assert Path(database).parent == Path(volume), "the SQLite file must live in the volume"
    assert json.loads(final("ENTRYPOINT")[0]) == ["webui"] and json.loads(final("CMD")[0]) == ["serve"]


def final_uid(runs: str) -> str:
    match = re.search(r"--uid (\d+)", runs)
    assert match, "the image's user needs a fixed uid"
    assert match.group(1) != "0"
    return match.group(1)


def test_the_installed_image_holds_the_ui_and_no_build_tools(image: ImageRoot) -> None:
    venv = image.path("/opt/celery-webui")
    assert (venv / "bin" / "webui").exists()
    assert (venv / "healthcheck.py").exists()
    assert not image.path("/usr/local/bin/build-steps").exists(), "the build script stays in the image"
    for tool in ("hatchling", "pip", "wheel"):
        found = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {tool}"], capture_output=True)
        assert found.returncode != 0, f"{tool} is installed in the final image"


def test_the_entrypoint_serves_with_the_image_env_and_the_healthcheck_passes(image: ImageRoot, redis_db: str,
                                                                              tmp_path: Path) -> None:
    users = tmp_path / "webui-users"  # a Docker secret, read through WEBUI_BASIC_AUTH_FILE
    users.write_text(f"admin:{hash_password('correct horse')}\n")
    env = {name: value.replace("/data/", str(image.path("/data")) + "/") for name, value in final_env().items()}
    port = free_port()
    env.update(PATH=f"{image.path('/opt/celery-webui/bin')}:{os.environ['PATH']}",
               WEBUI_PORT=str(port), WEBUI_BROKER=redis_db, WEBUI_BASIC_AUTH_FILE=str(users))
    healthcheck = healthcheck_command(image)

    def healthy() -> bool:
        return subprocess.run(healthcheck, env=child_env(env), capture_output=True, timeout=10).returncode == 0

    assert not healthy(), "the healthcheck passed with no server running"
    argv = [*json.loads(final("ENTRYPOINT")[0]), *json.loads(final("CMD")[0])]
    server = LoggedProcess([str(image.path("/opt/celery-webui/bin") / argv[0]), *argv[1:]],
                           tmp_path / "serve.log", env)
    try:
        wait_for(lambda: server.assert_alive("starting") or healthy(), timeout=60, interval=0.5,
                 message="the image's HEALTHCHECK never passed")
        assert http_get(f"http://127.0.0.1:{port}/healthcheck").body == "OK"
        assert image.path("/data/webui.sqlite3").exists(), "the store is not in the volume"
        # Listening beyond loopback, every page but the probe needs the login.
        assert http_get(f"http://127.0.0.1:{port}/api/v1/tasks").status == 401
    finally:
        server.stop(grace=10)
        print(server.log_tail())


def healthcheck_command(image: ImageRoot) -> list[str]:
    (line,) = final("HEALTHCHECK")
    match = re.search(r"CMD (\[.*\])$", line)
    assert match, f"HEALTHCHECK {line}: expected the exec form"
    command = json.loads(match.group(1))
    assert command[0] == "python"
    return [str(image.path("/opt/celery-webui/bin/python")), *image.map_args(command[1:])]


@pytest.mark.parametrize(("env", "url"), [
    ({"WEBUI_ADDRESS": "0.0.0.0"}, "http://127.0.0.1:5555/healthcheck"),
    ({"WEBUI_ADDRESS": "127.0.0.1", "WEBUI_URL_PREFIX": "/celery/"}, "http://127.0.0.1:5555/celery/healthcheck"),
    ({"WEBUI_ADDRESS": "::", "WEBUI_PORT": "8080"}, "http://[::1]:8080/healthcheck"),
    ({"WEBUI_ADDRESS": "10.0.0.5", "WEBUI_URL_PREFIX": "ops/celery"}, "http://10.0.0.5:5555/ops/celery/healthcheck"),
])
def test_the_healthcheck_asks_where_the_server_listens(env: dict[str, str], url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("WEBUI_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("healthcheck", REPO_ROOT / "docker" / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.healthcheck_url() == url
