"""Import every detector module so each registers itself in webui.detect.registry."""
from __future__ import annotations
