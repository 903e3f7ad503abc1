"""Playwright driving Debian's Chromium (never `playwright install`): a session browser, and a page per test
that fails the test on any console error, uncaught exception or CSP violation.

Usage: take `page` (light) or parametrize `color_scheme` (`@pytest.mark.parametrize("color_scheme", ["dark"])`);
`screenshot(page, "name")` saves tests/browser/screenshots/name.png (git-ignored) for a human to look at, or
into WEBUI_TEST_SCREENSHOTS when set (`WEBUI_TEST_SCREENSHOTS=docs/screenshots` refreshes the docs' pictures).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import unavailable

CHROMIUM = Path(os.environ.get("WEBUI_TEST_CHROMIUM", "/usr/bin/chromium"))
# A relative WEBUI_TEST_SCREENSHOTS is taken from the repository root, wherever pytest runs.
SCREENSHOTS = Path(__file__).resolve().parents[2] / os.environ.get("WEBUI_TEST_SCREENSHOTS",
                                                                  "tests/browser/screenshots")
VIEWPORT = {"width": 1280, "height": 900}
PHONE_VIEWPORT = {"width": 390, "height": 844}
# Chromium reports CSP violations on the console already; this makes sure they are errors whatever it logs.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline"));
});
"""



@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium for the whole session."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: apt-get install chromium to run the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def color_scheme() -> str:
    """Override with `@pytest.mark.parametrize("color_scheme", ["light", "dark"])`."""
    return "light"


class ConsoleProblems:
    """Console errors, uncaught exceptions, failed subresources and CSP violations seen by one page.

    A page navigated to that answers an error status (a 404 page a test asks for) is the test's to check
    through `page.goto(...).status`, so Chromium's "Failed to load resource" for it is not a problem here.
    """

    def __init__(self) -> None:
        self._seen: list[tuple[str, str | None]] = []
        self._documents: set[str] = set()
        self.frozen = False  # set when the test body ends: servers stopping at teardown are not the page's fault

    def _add(self, problem: tuple[str, str | None]) -> None:
        if not self.frozen:
            self._seen.append(problem)

    def attach(self, page: Any) -> None:
        page.on("console", lambda msg: self._add((f"console.error: {msg.text}", msg.location.get("url")))
                if msg.type == "error" else None)
        page.on("pageerror", lambda error: self._add((f"uncaught: {error}", None)))
        page.on("response", self._on_response)

    def _on_response(self, response: Any) -> None:
        if response.request.resource_type == "document":
            self._documents.add(response.url)
        elif response.status >= 400:  # the console's message does not always say which resource
            self._add((f"HTTP {response.status}: {response.url}", None))

    def __call__(self) -> list[str]:
        return [f"{text} ({url})" if url else text for text, url in self._seen
                if not (text.startswith("console.error: Failed to load resource") and url in self._documents)]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: Any) -> Iterator[None]:
    """Stop counting a page's console errors when the test body ends: at teardown the server stops before
    the page closes, and a live page that then fails to reconnect is doing its job."""
    yield
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if page is not None and hasattr(page, "console_problems"):
        page.console_problems.frozen = True


@pytest.fixture
def page(browser: Any, color_scheme: str) -> Iterator[Any]:
    """A page in a fresh context (1280×900); any console error fails the test."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme=color_scheme)
    context.add_init_script(_REPORT_CSP_VIOLATIONS)
    problems = ConsoleProblems()
    page = context.new_page()
    problems.attach(page)
    page.console_problems = problems
    try:
        yield page
    finally:
        context.close()
    if problems():
        pytest.fail("the page reported errors:\n" + "\n".join(problems()))


def assert_no_console_problems(page: Any) -> None:
    """Check now (the fixture checks again at teardown)."""
    problems = page.console_problems()
    assert not problems, "the page reported errors:\n" + "\n".join(problems)


def screenshot(page: Any, name: str, full_page: bool = True) -> Path:
    """Save a PNG of `page` to SCREENSHOTS/`name`.png and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def scroll_to(page: Any, selector: str) -> None:
    """Scroll the first element matching `selector` to the top of the view, in one step of the page's own script.

    A live page swaps its sections in place: Playwright's `scroll_into_view_if_needed` holds the element it found
    across several steps and fails when a swap replaces it in between ("Element is not attached to the DOM")."""
    page.wait_for_selector(selector, state="attached")
    page.wait_for_function("s => { const e = document.querySelector(s); if (e) e.scrollIntoView(); return !!e; }",
                           arg=selector)
