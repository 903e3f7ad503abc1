"""`webui demo`: a small shop's Celery app with traffic of its own, and the runner that shows it in the UI."""
