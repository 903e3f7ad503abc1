"""The Celery app a real `celery beat -A tests.beatapp_django` runs with django-celery-beat's DatabaseScheduler.

Django is configured here, at import, from WEBUI_TEST_DJANGO_DB (the settings test_beat_source_django uses), so
beat reads the periodic tasks the test wrote there; they send tasks the session's worker runs (tests.celeryapp).
"""
from __future__ import annotations

import os

import django
from celery import Celery
from django.conf import settings

import webui.agent
from tests.integration.test_beat_source_django import _django_settings

settings.configure(**_django_settings(os.environ["WEBUI_TEST_DJANGO_DB"]))
django.setup()

BROKER_URL = os.environ.get("WEBUI_TEST_BROKER", "redis://127.0.0.1:6379/1")

app = Celery("tests.beatapp_django", broker=BROKER_URL)
app.conf.update(
    task_send_sent_event=True,  # the fires are seen from the task-sent events beat publishes
    timezone="UTC",
    broker_transport_options={"visibility_timeout": 3600},  # as tests.celeryapp: broadcasts must agree
    broker_connection_retry_on_startup=True,
    beat_scheduler="django_celery_beat.schedulers:DatabaseScheduler",
)
webui.agent.install_from_settings(app)  # with WEBUI_AGENT_URL set: the companion stamps each fire
