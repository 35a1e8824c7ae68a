"""CORS: the service answers browsers only from the origins it is configured with."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser

from tests.api.helpers import make_pool
from tests.browser.harness import BUSINESS, Site, html_page, open_tab, snippet
from tests.browser.test_resilience import PAGE, still_the_business_number


@pytest.fixture
def cors_origins() -> list[str]:
    """The service answers browsers from another site only."""
    return ["https://www.other-shop.example"]


async def test_a_site_that_is_not_a_configured_origin_gets_no_number(
    base: str, ops: httpx.AsyncClient, site: Site, browser: Browser
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS)
    site.pages["/"] = html_page(PAGE, head=snippet(base))
    tab = await open_tab(browser)
    await tab.page.goto(site.origin + "/")
    await tab.page.wait_for_function("window.CallTrack !== undefined")
    await tab.page.wait_for_timeout(1500)
    await still_the_business_number(tab)
    assert any("CORS" in error for error in tab.errors)
    # The preflight was refused, so the lease request itself never reached the service.
    stats = (await ops.get("/v1/pools/default/stats")).json()
    assert stats["leases_started"] == 0
    await tab.page.context.close()
