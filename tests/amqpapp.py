"""A bare Celery app for collectors the RabbitMQ tests start with `webui collect -A tests.amqpapp`.

Its event exchange comes from env WEBUI_TEST_EVENT_EXCHANGE, so tests sharing one RabbitMQ vhost (and other test
sessions on it) never see each other's events. The broker is given with --broker.
"""
from __future__ import annotations

import os

from celery import Celery

app = Celery("tests.amqpapp")
app.conf.event_exchange = os.environ.get("WEBUI_TEST_EVENT_EXCHANGE", "celeryev")
