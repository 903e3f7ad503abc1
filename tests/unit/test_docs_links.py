"""Links in the README and docs/ lead somewhere: every relative link names a file of the repository, and every
`#anchor` a heading of the page it points to (as GitHub names them), including the sections the UI itself
links to (the first-run guidance)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from webui.views.first_run import STEPS

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"^```.*?^```", re.M | re.S)


def anchors(page: Path) -> set[str]:
    """GitHub's ids for a page's headings: lower case, punctuation but - and _ dropped, spaces as -."""
    text = CODE_BLOCK.sub("", page.read_text())
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.*)$", text, re.M)}


def test_anchors_are_named_as_github_names_them() -> None:
    page = REPO_ROOT / "docs" / "troubleshooting.md"
    assert "broker_transport_options-differ-from-the-workers" in anchors(page)
    assert "database-is-locked-sqlite" in anchors(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for link in LINK.findall(CODE_BLOCK.sub("", page.read_text())):
        if re.match(r"^[a-z]+:", link):  # http:, https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.name}")
    assert not broken, broken


def test_the_sections_the_first_run_guidance_links_to_exist() -> None:
    for step in STEPS:
        path, _, anchor = step.docs.partition("#")
        assert anchor in anchors(REPO_ROOT / path), step.docs
