"""docker/compose.yml can't be started here (no Docker), so everything it names is checked instead: images are
pinned or built from our Dockerfile, bind mounts exist, WEBUI_* variables are real settings with valid values,
the services it points at exist on the ports they listen on, and Prometheus' config, its rules (and their unit
tests) and the Grafana dashboard's queries pass Debian's promtool.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.processes import REPO_ROOT
from tests.support.services import unavailable
from webui.settings import SETTINGS, load_settings

DOCKER = REPO_ROOT / "docker"
COMPOSE = DOCKER / "compose.yml"
NGINX_CONFIG = DOCKER / "nginx" / "celery-webui.conf"  # the file tests/integration/test_reverse_proxy.py runs
DASHBOARDS = DOCKER / "grafana" / "dashboards"
# Grafana's variables, as a query would see them once Grafana has filled them in.
GRAFANA_VARIABLES = {"$task": ".*", "$__rate_interval": "1m", "$__range": "1h", "${datasource}": ""}
OUR_ENV = {s.env_var for s in SETTINGS} | {f"{s.env_var}_FILE" for s in SETTINGS}


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return stack["services"]


def ours(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run our image."""
    return {name: s for name, s in services(stack).items() if "build" in s}


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → the repository file or directory mounted there."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (DOCKER / source).resolve()
    return mounts


def mounted(service: dict[str, Any], container_path: str) -> Path:
    """The repository file seen at `container_path` in the service (directly mounted, or inside a mount)."""
    for target, source in bind_mounts(service).items():
        path = PurePosixPath(container_path)
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            found = source / path.relative_to(target)
            assert found.exists(), f"{container_path} maps to {found}, which does not exist"
            return found
    raise AssertionError(f"nothing is mounted at {container_path}")


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in (service.get("environment") or {}).items()}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool is not on PATH: apt-get install prometheus")
    return path


def run_promtool(*args: str) -> str:
    done = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_every_image_is_pinned_or_built_from_our_dockerfile(stack) -> None:
    for name, service in services(stack).items():
        if "build" in service:
            build = service["build"]
            context = (DOCKER / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']} in {context}"
            assert context == REPO_ROOT, f"{name}: .dockerignore and the Dockerfile's COPY lines expect the repo root"
        else:
            image = service["image"]
            assert re.search(r":v?\d+\.\d+", image), f"{name}: {image} is not pinned to a version"
    built = {s["image"] for s in ours(stack).values()}
    assert len(built) == 1, f"the UI, worker and beat should share one image, not {built}"


def test_bind_mounts_exist_and_named_volumes_are_declared(stack) -> None:
    declared = set(stack.get("volumes") or {})
    used = set()
    for name, service in services(stack).items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} does not exist (relative to docker/)"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"


def test_references_to_other_services_name_services_that_exist(stack) -> None:
    names = set(services(stack))
    for name, service in services(stack).items():
        assert set(service.get("depends_on") or ()) <= names, name
        network = service.get("network_mode", "")
        if network.startswith("service:"):
            assert network.removeprefix("service:") in names, name
            assert "ports" not in service, f"{name}: publish ports on the service whose network it shares"
    for port in (p for s in services(stack).values() for p in s.get("ports", [])):
        assert port.startswith("127.0.0.1:"), f"{port}: the demo has no login, publish on loopback only"


def test_our_services_have_valid_settings_and_an_importable_app(stack) -> None:
    for name, service in ours(stack).items():
        env = environment(service)
        unknown = {key for key in env if key.startswith("WEBUI_") and key not in OUR_ENV}
        if name == "webui":
            assert not unknown, f"{name}: not settings: {unknown}"
            settings = load_settings(environ=env)  # raises SettingsError on any bad value
            assert urlsplit(settings.database or "").hostname in services(stack)
            assert urlsplit(settings.broker or "").hostname in services(stack)
            assert importlib.util.find_spec(settings.app or "") is not None
        else:
            # The demo app reads WEBUI_BROKER itself (webui/demo/app.py); its processes run Celery, not webui.
            assert unknown == set() and urlsplit(env["WEBUI_BROKER"]).hostname in services(stack)
            command = service["entrypoint"]
            assert command[:3] == ["celery", "-A", "webui.demo.app"] and command[3] in ("worker", "beat")
            assert importlib.util.find_spec(command[2]) is not None
            assert service["healthcheck"] == {"disable": True}, f"{name}: the image's check asks `webui serve`"


def test_the_database_and_its_server_agree(stack) -> None:
    url = urlsplit(environment(services(stack)["webui"])["WEBUI_DATABASE"])
    postgres = environment(services(stack)[url.hostname or ""])
    assert (url.username, url.password, url.path.lstrip("/")) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"])


def test_nginx_runs_the_tested_example_config_in_front_of_the_ui(stack) -> None:
    nginx = services(stack)["nginx"]
    assert mounted(nginx, "/etc/nginx/conf.d/default.conf") == NGINX_CONFIG
    ui_name = nginx["network_mode"].removeprefix("service:")
    ui = services(stack)[ui_name]
    env = environment(ui)
    config = NGINX_CONFIG.read_text()
    # nginx shares the UI's network: its upstream is the UI's loopback address and port.
    assert f"server {env['WEBUI_ADDRESS']}:{env['WEBUI_PORT']};" in config
    assert f"location {env['WEBUI_URL_PREFIX']}/ " in config
    (listen,) = re.findall(r"^\s*listen (\d+);", config, re.M)
    assert [p.rsplit(":", 1)[1] for p in ui["ports"]] == [listen]


def test_prometheus_scrapes_the_ui_and_loads_rules_promtool_accepts(stack, tmp_path: Path) -> None:
    prometheus = services(stack)["prometheus"]
    config_file = mounted(prometheus, "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load(config_file.read_text())
    (job,) = config["scrape_configs"]
    ui = environment(services(stack)["webui"])
    assert job["metrics_path"] == ui["WEBUI_URL_PREFIX"] + "/metrics"
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    (listen,) = re.findall(r"^\s*listen (\d+);", NGINX_CONFIG.read_text(), re.M)
    assert (host, port) == ("webui", listen), "Prometheus should scrape through nginx"
    assert ui["WEBUI_METRICS_PUBLIC"] == "true" or "authorization" in job

    rule_files = [mounted(prometheus, path) for path in config["rule_files"]]
    assert sorted(rule_files) == sorted((DOCKER / "prometheus").glob("*.rules.yml"))
    run_promtool("check", "rules", *map(str, rule_files))
    # And they fire when they should, and not when they shouldn't, on series shaped like ours.
    run_promtool("test", "rules", str(DOCKER / "prometheus" / "celery-webui.rules.test.yml"))
    # The config as Prometheus reads it in the container, with the rules at their repository paths.
    local = dict(config, rule_files=[str(path) for path in rule_files])
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(local))
    run_promtool("check", "config", str(tmp_path / "prometheus.yml"))


def dashboard_queries() -> list[str]:
    queries = []
    for path in DASHBOARDS.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            queries += [target["expr"] for target in panel.get("targets", [])]
    return queries


def grafana_filled(query: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    assert "$" not in query, f"a Grafana variable this test does not know: {query}"
    return query


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(stack, tmp_path: Path) -> None:
    grafana = services(stack)["grafana"]
    (source,) = yaml.safe_load(mounted(grafana, "/etc/grafana/provisioning/datasources/prometheus.yml")
                               .read_text())["datasources"]
    url = urlsplit(source["url"])
    assert source["type"] == "prometheus" and url.hostname in services(stack)
    assert any(port.endswith(f":{url.port}") for port in services(stack)[url.hostname]["ports"])
    (provider,) = yaml.safe_load(mounted(grafana, "/etc/grafana/provisioning/dashboards/celery-webui.yml")
                                 .read_text())["providers"]
    assert mounted(grafana, provider["options"]["path"]) == DASHBOARDS
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert json.loads(mounted(grafana, home).read_text())["uid"] == "celery-webui"

    # Every panel's query is PromQL that Prometheus parses: promtool checks them as recording rules.
    queries = dashboard_queries()
    assert len(queries) >= 20
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": grafana_filled(q)} for i, q in enumerate(queries)]}]}
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(rules))
    run_promtool("check", "rules", str(tmp_path / "dashboard.rules.yml"))
