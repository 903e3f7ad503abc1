"""The Celery app a real `celery beat` runs in the beat monitoring tests (`celery -A tests.beatapp beat`).

Its own app object, so the monitors of other tests (`-A tests.celeryapp`) see no beat schedule. The entries send
tasks the session's worker runs (tests.celeryapp, by name), each with WEBUI_TEST_BEAT_TOKEN in its arguments: other
test sessions may share the Redis database, and their beats' fires must not count as ours.
"""
from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

import webui.agent

BROKER_URL = os.environ.get("WEBUI_TEST_BROKER", "redis://127.0.0.1:6379/1")
TOKEN = os.environ.get("WEBUI_TEST_BEAT_TOKEN", "beat-token")

app = Celery("tests.beatapp", broker=BROKER_URL, backend=BROKER_URL)
app.conf.update(
    task_send_sent_event=True,
    timezone="UTC",
    broker_transport_options={"visibility_timeout": 3600},  # as tests.celeryapp: broadcasts must agree
    broker_connection_retry_on_startup=True,
    beat_enable_remote_control=os.environ.get("WEBUI_TEST_BEAT_REMOTE_CONTROL", "1") == "1",
    beat_schedule={
        "echo-every-2s": {"task": "tests.celeryapp.echo", "schedule": 2.0, "args": ("every-2s", TOKEN)},
        "fail-every-3s": {"task": "tests.celeryapp.fail", "schedule": 3.0, "args": (f"beat {TOKEN}",)},
        "nightly-report": {"task": "tests.celeryapp.echo", "schedule": crontab(minute=0, hour=0),
                           "kwargs": {"report": "nightly", "token": TOKEN}},
        "weekday-morning": {"task": "tests.celeryapp.echo",
                            "schedule": crontab(minute=30, hour=7, day_of_week="mon-fri"),
                            "kwargs": {"report": "morning", "token": TOKEN}, "options": {"queue": "celery"}},
    },
)
webui.agent.install_from_settings(app)  # with WEBUI_AGENT_URL set: the companion stamps each fire
