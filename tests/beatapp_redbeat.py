"""The Celery app a real `celery beat -A tests.beatapp_redbeat` runs with RedBeat's scheduler.

Its entries are the RedBeat keys the test wrote under WEBUI_TEST_REDBEAT_PREFIX in WEBUI_TEST_REDBEAT_URL; they
send tasks the session's worker runs (tests.celeryapp).
"""
from __future__ import annotations

import os

from celery import Celery

import webui.agent

BROKER_URL = os.environ.get("WEBUI_TEST_BROKER", "redis://127.0.0.1:6379/1")
PREFIX = os.environ.get("WEBUI_TEST_REDBEAT_PREFIX", "redbeat:")

app = Celery("tests.beatapp_redbeat", broker=BROKER_URL)
app.conf.update(
    task_send_sent_event=True,
    timezone="UTC",
    broker_transport_options={"visibility_timeout": 3600},
    broker_connection_retry_on_startup=True,
    beat_scheduler="redbeat.RedBeatScheduler",
    redbeat_redis_url=os.environ.get("WEBUI_TEST_REDBEAT_URL", BROKER_URL),
    redbeat_key_prefix=PREFIX,
    redbeat_lock_key=f"{PREFIX}:lock",
)
webui.agent.install_from_settings(app)  # with WEBUI_AGENT_URL set: the companion stamps each fire
