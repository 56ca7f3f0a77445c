"""A real Chromium (Debian's, at /usr/bin/chromium) driven by Playwright against `live_server`.

Without Playwright or the browser the tests skip, except when
ICMP_REQUIRE_BROWSER=1 (CI): there a missing browser fails the run.

Playwright's sync API runs in the test thread with its event loop marked as
running there, so Django would refuse ORM calls from the test itself
("You cannot call this from an async context"); DJANGO_ALLOW_ASYNC_UNSAFE
is set only while a browser module runs. The live server answers from its
own thread, untouched by this.

Screenshots go to tests/artifacts/screenshots/<test-name>-<step>.png, and a
failing test leaves a `-failure` one of the page it was on.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
# Generous: CI machines are shared; a passing step never waits this long.
TIMEOUT_MS = 15_000


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements-browser.txt)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing (bash scripts/install-browser.sh)"
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Kept on the item so the page fixture knows, at teardown, that the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def _fresh_screenshots() -> None:
    """Screenshots of earlier runs (or renamed tests) must not pass for this run's."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="module")
def browser(_fresh_screenshots) -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("ICMP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"ICMP_REQUIRE_BROWSER=1 but {missing}", pytrace=False)
        pytest.skip(f"browser tests need a browser: {missing}")

    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                yield chromium
            finally:
                chromium.close()


@pytest.fixture
def page(browser, live_server, request) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the live server."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            _screenshot(page, request.node.name, "failure")
        context.close()


def _screenshot(page: Any, test_name: str, step: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test_name}-{step}")
    path = SCREENSHOTS / f"{name}.png"
    try:
        page.screenshot(path=str(path), full_page=True)
    except Exception:  # a crashed page must not hide the test's own error
        path.unlink(missing_ok=True)
    return path


@pytest.fixture
def screenshot(request) -> Callable[[Any, str], Path]:
    """screenshot(page, "step") saves tests/artifacts/screenshots/<test-name>-<step>.png."""

    def take(page: Any, step: str) -> Path:
        path = _screenshot(page, request.node.name, step)
        assert path.is_file(), f"no screenshot at {path}"
        return path

    return take


@pytest.fixture
def login_as(page, live_server) -> Callable[[Any], Any]:
    """Puts a logged-in admin session for `user` into the page's context.

    Only the login test goes through the login form; the others start logged in.
    """

    def login(user) -> Any:
        client = Client()
        client.force_login(user)
        session_cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session_cookie.value, "url": live_server.url}]
        )
        return page

    return login
