"""`imports = ["webui.agent.auto"]` (or `include=`) in a Celery app's settings: the companion with no code change.

Celery imports the module in the worker (and in beat) as it starts, before the pool forks; it installs the
companion on the app being started, with `webui_agent_*` settings or WEBUI_AGENT_* environment variables.
"""
from __future__ import annotations

from celery import current_app

from webui.agent import install

install(current_app._get_current_object())
