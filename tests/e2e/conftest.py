"""Browser tests: a live server seeded with the Musi Rawas demo, and Debian's headless Chromium through Playwright.

The browser is `/usr/bin/chromium` (never `playwright install`). Without it these tests are skipped with a reason;
with KOTACERDAS_E2E_REQUIRED=1 (set by CI) a missing browser or any skipped browser test is a failure instead.
Screenshots of failing pages go to KOTACERDAS_E2E_SCREENSHOTS, or to a temporary folder named in the report.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import BOUNDARIES_FILE, running_server
from kotacerdas.app import create_app
from kotacerdas.config import Settings
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.demo import seed_demo
from kotacerdas.migrate import upgrade_database

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRED = os.environ.get("KOTACERDAS_E2E_REQUIRED") == "1"
DEFAULT_TIMEOUT_MS = 10_000


@dataclass
class LiveServer:
    url: str
    settings: Settings
    boundaries_imported: bool


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
    if REQUIRED and report.skipped and item.get_closest_marker("e2e") is not None:
        # In CI a skipped browser test would hide a broken setup: count it as failed.
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"KOTACERDAS_E2E_REQUIRED=1 but the browser test was skipped: {reason}"


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """Headless Chromium (Debian's package), shared by every browser test."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real app under uvicorn on a free loopback port, on a SQLite data folder seeded with the demo."""
    data_dir = tmp_path_factory.mktemp("e2e-data")
    settings = Settings(data_dir=data_dir, secret_key="e2e-secret-" + "x" * 32)
    boundaries = BOUNDARIES_FILE if BOUNDARIES_FILE.is_file() else None
    engine = make_engine(settings)
    upgrade_database(engine)
    with make_sessionmaker(engine)() as session:
        seed_demo(session, settings=settings, boundaries=boundaries)
        session.commit()
    engine.dispose()

    with running_server(create_app(settings), name="e2e-uvicorn") as url:
        yield LiveServer(url=url, settings=settings, boundaries_imported=boundaries is not None)


@pytest.fixture(scope="session")
def screenshots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("KOTACERDAS_E2E_SCREENSHOTS")
    path = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(browser, live_server: LiveServer, screenshots_dir: Path, request: pytest.FixtureRequest) -> Iterator:
    """A fresh browser context (no cookies) that speaks Indonesian, as a browser in Musi Rawas would."""
    context = browser.new_context(base_url=live_server.url, locale="id-ID", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page.errors = []  # uncaught JavaScript errors, for tests to assert on
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        target = screenshots_dir / f"{request.node.name}.png"
        try:
            page.screenshot(path=str(target), full_page=True)
            print(f"\nscreenshot of the failing page ({page.url}): {target}")
        except Exception as exc:  # a screenshot must not hide the real failure
            print(f"\nno screenshot: {exc}")
    context.close()
