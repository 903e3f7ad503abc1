"""Vendored assets are exactly the pinned files, and pages load nothing from elsewhere."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / "static" / "vendor"


def test_every_vendored_file_matches_its_checksum():
    sums = dict(reversed(line.split(None, 1)) for line in (VENDOR / "SHA256SUMS").read_text().splitlines())
    js_files = sorted(p.name for p in VENDOR.glob("*.js"))
    assert sorted(s.strip() for s in sums) == js_files, "SHA256SUMS must list every vendored script"
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name.strip()).read_bytes()).hexdigest() == digest, name


def test_templates_load_scripts_and_styles_only_from_static():
    for template in (REPO / "templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"""(src|href)=["']https?://""", text), f"{template} loads from another origin"
        assert "<script>" not in text and "onclick=" not in text, f"{template} has inline script (CSP)"
