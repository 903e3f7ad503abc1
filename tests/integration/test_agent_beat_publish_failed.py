"""A real `celery beat` whose publish raises (an argument the JSON serializer refuses: kombu's EncodeError, raised
before the broker saw it), with the companion in beat: `webui serve` stores each attempt as a failed one (and no
task: it was never sent), counts none of them as a fire, and the entry goes late then missed saying the publish
failed, on its page and in the API. A healthy entry of the same beat keeps firing beside it."""
from __future__ import annotations

import sys
import textwrap
import time

import pytest
import requests

from tests.integration.test_beat_monitoring import entries
from tests.support.processes import REPO_ROOT, LoggedProcess
from tests.support.services import PrivateRedis
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

APP = '''
    import os
    from datetime import timezone

    from celery import Celery

    import webui.agent

    app = Celery("beat_failing_app", broker=os.environ["WEBUI_TEST_BROKER"])
    app.conf.update(timezone="UTC", task_send_sent_event=True, broker_connection_retry_on_startup=True,
                    broker_transport_options={"visibility_timeout": 3600},
                    beat_schedule={
                        # A timezone object is no JSON: every publish of this entry raises EncodeError.
                        "unsendable-every-2s": {"task": "tests.celeryapp.echo", "schedule": 2.0,
                                                "args": (timezone.utc, os.environ["WEBUI_TEST_BEAT_TOKEN"])},
                        "fine-every-2s": {"task": "tests.celeryapp.echo", "schedule": 2.0,
                                          "args": ("fine", os.environ["WEBUI_TEST_BEAT_TOKEN"])},
                    })
    webui.agent.install_from_settings(app)
'''


def test_a_publish_that_raises_is_a_failed_attempt_and_the_entry_says_so(
        worker, database_url, run_webui, tmp_path, private_redis: PrivateRedis) -> None:
    (tmp_path / "beat_failing_app.py").write_text(textwrap.dedent(APP))
    env = {"WEBUI_TEST_BROKER": worker.broker_url, "WEBUI_TEST_BEAT_TOKEN": f"token-{time.time_ns()}",
           "WEBUI_AGENT_URL": private_redis.url(0), "PYTHONPATH": f"{tmp_path}:{REPO_ROOT}"}
    server = run_webui("serve", "-A", "beat_failing_app", "--broker", worker.broker_url, "--database", database_url,
                       "--batch-interval", "0.1", "--no-enable-events", "--beat-interval", "1", env=env)
    server.wait_http("/healthcheck", 200, timeout=30)
    beat = LoggedProcess([sys.executable, "-m", "celery", "-A", "beat_failing_app", "beat", "-s",
                          str(tmp_path / "celerybeat-schedule"), "--max-interval", "1", "-l", "info"],
                         tmp_path / "beat.log", env)
    try:
        def missed() -> dict | None:
            beat.assert_alive("waiting for the unsendable entry to be missed")
            now = entries(server)
            bad, fine = now.get("unsendable-every-2s"), now.get("fine-every-2s")
            return now if bad and fine and bad["state"] == "missed" and fine["fires"] else None
        seen = wait_for(missed, timeout=45, interval=0.5, message="the unsendable entry missed")
    finally:
        beat.stop()
        print(beat.log_tail())

    bad, fine = seen["unsendable-every-2s"], seen["fine-every-2s"]
    assert "EncodeError" in beat.log_text() or "serializ" in beat.log_text()
    assert bad["fires"] and all(f["failed"] for f in bad["fires"]), bad["fires"]
    assert bad["last_fired_at"] is None and bad["last_outcome"] is None  # attempts, not fires
    failure = bad["publish_failed"]
    assert failure is not None and failure["due"] is not None and "serializable" in failure["failed"], failure
    assert all(f["failed"] is None and f["due"] is not None for f in fine["fires"]), fine["fires"]

    # Never sent, so no task: not one PENDING forever. The page names the id without linking to a task page.
    assert all(requests.get(f"{server.url}/api/v1/tasks/{f['task_uuid']}", timeout=10).status_code == 404
               for f in bad["fires"]), bad["fires"]
    page = requests.get(f"{server.url}/beat/{bad['id']}", timeout=10)
    assert page.status_code == 200
    assert "Publish failed." in page.text and "publish failed</span>" in page.text
    assert "serializable" in page.text
    failed_id = bad["fires"][0]["task_uuid"]
    assert f"{failed_id}: never sent" in page.text and f"/task/{failed_id}" not in page.text
