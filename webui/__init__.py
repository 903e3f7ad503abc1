"""Celery WebUI: a durable monitor and control panel for Celery clusters."""
from __future__ import annotations

__version__ = "0.1.0"
