"""Where templates and static files are: inside the package when installed, at the repo root in a checkout."""
from __future__ import annotations

import os

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_REPO_DIR = os.path.dirname(_PACKAGE_DIR)


def _find(name: str) -> str:
    installed = os.path.join(_PACKAGE_DIR, name)  # the wheel maps <repo>/name to webui/name
    return installed if os.path.isdir(installed) else os.path.join(_REPO_DIR, name)


TEMPLATES_DIR = _find("templates")
STATIC_DIR = _find("static")
