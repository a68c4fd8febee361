"""Browser journeys: the portal under uvicorn on loopback, driven by Debian's Chromium through Playwright.

The live server runs in its own thread with its own event loop and engine; tests arrange data with the ``world``
fixture (same database) and the database is emptied afterwards like in every other test. Nothing is downloaded:
Chromium is ``/usr/bin/chromium`` (``.ci/run`` installs it with apt-get).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from portal.app import create_app
from portal.settings import Settings
from tests.conftest import SMTPSink, free_port, make_settings

CHROMIUM = os.environ.get("PORTAL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]

pytestmark = pytest.mark.browser


@dataclass
class LiveServer:
    url: str
    settings: Settings


@pytest.fixture
def live_settings(database_url: str, tmp_path: Path, smtp_sink: SMTPSink) -> Settings:
    port = free_port()
    return make_settings(database_url, tmp_path, base_url=f"http://127.0.0.1:{port}", smtp_url=smtp_sink.url)


@pytest.fixture
def live_server(live_settings: Settings, db: Any, mail: SMTPSink) -> Iterator[LiveServer]:
    """The portal served by uvicorn on 127.0.0.1 for one test."""
    port = int(live_settings.base_url.rsplit(":", 1)[1])
    server = uvicorn.Server(uvicorn.Config(create_app(live_settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live portal did not start")
        time.sleep(0.02)
    yield LiveServer(live_settings.base_url, live_settings)
    server.should_exit = True
    thread.join(timeout=20)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context()
    context.set_default_timeout(15_000)
    yield context
    await context.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


@pytest.fixture
async def new_page(browser: Browser) -> AsyncIterator[Callable[[], Awaitable[Page]]]:
    """``await new_page()`` opens a page in a fresh browser context: another person, with their own cookies."""
    contexts: list[BrowserContext] = []

    async def make() -> Page:
        context = await browser.new_context()
        context.set_default_timeout(15_000)
        contexts.append(context)
        return await context.new_page()

    yield make
    for context in contexts:
        await context.close()
