"""Fixtures of the browser tests: Chromium, the live service and a customer's site."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser

from app.state import utc_now
from tests.browser.harness import Site, Tab, chromium, customer_site, open_tab
from tests.e2e.live import BOUND, live_service
from tests.support import ADMIN, BACKENDS


@pytest.fixture(params=[b for b in BACKENDS if b == "sqlite"] or BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """One database: these tests are about the page script (the demo runs on both)."""
    return str(request.param)


@pytest.fixture
def site() -> Iterator[Site]:
    """The customer's website, on an origin of its own."""
    with customer_site() as served:
        yield served


@pytest.fixture
def cors_origins(site: Site) -> list[str]:
    """Origins the service answers browsers from: the customer's site."""
    return [site.origin]


@pytest.fixture
async def service(database_url: str, cors_origins: list[str]) -> AsyncIterator[tuple[str, FastAPI]]:
    """The service on a real port, on the real clock (the browser waits real seconds)."""
    async with live_service(database_url, utc_now, cors_origins=cors_origins) as served:
        yield served


@pytest.fixture
def base(service: tuple[str, FastAPI]) -> str:
    """The service's base URL."""
    return service[0]


@pytest.fixture
async def ops(base: str) -> AsyncIterator[httpx.AsyncClient]:
    """An ops API client of the live service."""
    async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=BOUND) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium."""
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[Tab]:
    """A browser tab; the test fails if the page logged an error it did not expect."""
    opened = await open_tab(browser)
    yield opened
    await opened.page.context.close()
    assert opened.errors == [], f"console errors: {opened.errors}"
