"""The OpenAPI document is true: every route under /api/ is in it (and nothing else), real responses of every
documented GET (and a control) validate against its schemas, and schemathesis finds no 500 in the reads."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
import requests

from tests import celeryapp as tasks
from tests.integration.test_api_flower import PASSWORD, ROLES, USERS
from tests.support.services import unavailable
from tests.support.waiting import wait_for
from webui.api.openapi import document
from webui.app import create_app
from webui.settings import default_settings

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ADMIN = ("alice", PASSWORD)


def app_paths() -> set[str]:
    app = create_app(default_settings(database="sqlite:///:memory:"), start_collector=False)
    return {re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule) for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/api/")}


def test_every_api_route_is_documented_and_every_documented_route_exists():
    documented = set(document()["paths"]) - {"/healthcheck"}
    assert app_paths() == documented


def validate(doc: dict[str, Any], path: str, method: str, response: requests.Response) -> None:
    responses = doc["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, f"{method} {path}: undocumented {response.status_code}"
    content = responses[str(response.status_code)]["content"]
    if "application/json" not in content:
        return
    schema = {**content["application/json"]["schema"], "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(response.json())


@pytest.fixture
def live(worker, database_url, run_webui):
    server = run_webui("serve", "-A", "tests.celeryapp", "--broker", worker.broker_url, "--database", database_url,
                       "--batch-interval", "0.1", "--no-enable-events", "--basic-auth", USERS, "--roles", ROLES,
                       env={"WEBUI_TEST_BROKER": worker.broker_url})
    server.wait_http("/healthcheck", 200, timeout=30)
    done = tasks.add.delay(1, 2)
    done.get(timeout=20)
    wait_for(lambda: requests.get(f"{server.url}/api/task/info/{done.id}", auth=ADMIN).status_code == 200,
             timeout=20, message="task never stored")
    wait_for(lambda: requests.get(f"{server.url}/api/v1/queues", auth=ADMIN).json()["queues"], timeout=30,
             message="no queue sampled")
    return server, {"task_id": done.id, "hostname": worker.hostname, "name": "celery", "entry_id": 1,
                    "incident_id": 1, "rule_id": 1}


@SQLITE_ONLY
def test_real_responses_validate_against_the_document(live):
    server, values = live
    doc = requests.get(f"{server.url}/api/v1/openapi.json", auth=ADMIN).json()
    assert doc == document()
    checked = 0
    for path, operations in doc["paths"].items():
        if "get" not in operations:
            continue
        url = server.url + path.format(**values)
        for params in ({}, {"limit": "nope"}):
            validate(doc, path, "get", requests.get(url, params=params, auth=ADMIN, timeout=30))
        unknown = re.sub(r"\{[^}]+\}", "no-such-thing", path)
        if unknown != path:
            missing = requests.get(server.url + unknown, auth=ADMIN, timeout=30)
            assert missing.status_code in (200, 404), unknown  # the result backend knows every id (PENDING)
            validate(doc, path, "get", missing)
        validate(doc, path, "get", requests.get(url, timeout=30))  # 401
        checked += 1
    assert checked >= 18
    revoked = requests.post(f"{server.url}/api/task/revoke/{values['task_id']}", auth=("oscar", PASSWORD))
    validate(doc, "/api/task/revoke/{task_id}", "post", revoked)
    refused = requests.post(f"{server.url}/api/worker/pool/grow/{values['hostname']}", auth=("vic", PASSWORD))
    validate(doc, "/api/worker/pool/grow/{hostname}", "post", refused)


@SQLITE_ONLY
def test_schemathesis_finds_no_server_error_in_the_reads(live):
    server, _ = live
    binary = shutil.which("schemathesis", path=str(sys.prefix) + "/bin")
    if binary is None:
        unavailable("schemathesis is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [binary, "run", f"{server.url}/api/v1/openapi.json", "--auth", f"alice:{PASSWORD}",
         "--checks", "not_a_server_error", "--max-examples", "15", "--include-method", "GET", "--workers", "4",
         # It waits up to its `timeout` (60 s) on the result backend by design; the contract test covers it.
         "--exclude-path", "/api/task/result/{task_id}",
         "--request-timeout", "30", "--phases", "examples,fuzzing"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b[1-9]\d* passed", result.stdout), result.stdout[-2000:]  # it did test operations
    print(result.stdout[-1500:])
