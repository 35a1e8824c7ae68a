"""dni.js never breaks the page: the business number stays when calltrack cannot help,
and nothing is leased or stored before consent."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
from playwright.async_api import Route

from tests.api.helpers import make_pool
from tests.browser.harness import BUSINESS, Site, Tab, html_page, short_lease_pool, snippet

PAGE = '<p id="phone">Call (212) 555-0100</p><a id="link" href="tel:+12125550100">call</a>'


async def still_the_business_number(tab: Tab) -> None:
    """The page shows what it printed, and the API says so."""
    assert await tab.text("#phone") == "Call (212) 555-0100"
    assert await tab.href("#link") == "tel:+12125550100"
    assert await tab.number() is None
    assert await tab.page.evaluate("CallTrack.telHref()") == "tel:" + BUSINESS


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_service_that_is_down_leaves_the_page_as_it_is(
    base: str, site: Site, tab: Tab
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    site.pages["/"] = html_page(PAGE, head=snippet(base, endpoint=dead))
    await tab.page.goto(site.origin + "/")
    await tab.page.wait_for_function("window.CallTrack !== undefined")
    await tab.page.wait_for_timeout(1500)
    await still_the_business_number(tab)
    assert len(tab.asked) == 1
    # The browser itself reports the refused connection; the page has no error of its own.
    tab.expected_errors("ERR_CONNECTION_REFUSED")


async def test_a_slow_service_neither_delays_the_page_nor_swaps_late(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS)
    site.pages["/"] = html_page(PAGE, head=snippet(base, timeout="1"))

    async def stall(route: Route) -> None:
        await asyncio.sleep(3)  # past the snippet's 1 s timeout
        await route.continue_()

    await tab.page.route("**/get_tracking_number", stall)
    started = time.monotonic()
    await tab.page.goto(site.origin + "/", wait_until="load")
    assert time.monotonic() - started < 1.0  # the async tag never holds the page's load
    await tab.page.wait_for_timeout(3500)
    await still_the_business_number(tab)
    # Once the service answers in time, the number is swapped after all (retry with backoff).
    await tab.page.unroute("**/get_tracking_number")
    await tab.wait_number()
    assert await tab.text("#phone") == "Call (256) 555-0101"


async def test_an_empty_pool_or_unknown_pool_leaves_the_business_number(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=0, fallback_number=BUSINESS)
    site.pages["/empty"] = html_page(
        PAGE,
        head="<script>window.events = []; addEventListener('calltrack:number',"
        " function (e) { events.push(e.detail); });</script>" + snippet(base),
    )
    await tab.page.goto(site.origin + "/empty")
    await tab.page.wait_for_function("events.length === 1")
    [event] = await tab.page.evaluate("events")
    assert event["tracked"] is False
    assert event["fallbackReason"] == "pool_empty"
    await still_the_business_number(tab)

    site.pages["/unknown"] = html_page(PAGE, head=snippet(base, pool="nope"))
    await tab.page.goto(site.origin + "/unknown")
    await tab.page.wait_for_function("window.CallTrack !== undefined")
    await tab.page.wait_for_timeout(1000)
    await still_the_business_number(tab)
    tab.expected_errors("422")  # the browser logs the refusal


async def test_nothing_is_leased_or_stored_before_consent(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS)
    site.pages["/"] = html_page(PAGE, head=snippet(base, consent="required"))
    await tab.page.goto(site.origin + "/?utm_source=google")
    await tab.page.wait_for_function("window.CallTrack !== undefined")
    await tab.page.wait_for_timeout(1500)
    assert tab.asked == []
    assert await tab.storage() == {}
    assert await tab.page.evaluate("document.cookie") == ""
    assert await tab.page.evaluate("CallTrack.sessionId()") is None
    await still_the_business_number(tab)
    stats = (await ops.get("/v1/pools/default/stats")).json()
    assert stats["leases_started"] == 0

    await tab.page.evaluate("CallTrack.consent(true)")
    await tab.wait_number("+12565550101")
    assert await tab.text("#phone") == "Call (256) 555-0101"
    assert list((await tab.storage()).keys()) == ["calltrack:default"]

    # Withdrawn: the visit is forgotten and the page shows its own number again.
    await tab.page.evaluate("CallTrack.consent(false)")
    assert await tab.storage() == {}
    await still_the_business_number(tab)


async def test_consent_given_before_the_script_loads_is_honoured(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS)
    site.pages["/"] = html_page(
        PAGE,
        head='<script>(window.CallTrack = window.CallTrack || []).push(["consent", true]);'
        "</script>" + snippet(base, consent="required"),
    )
    await tab.page.goto(site.origin + "/")
    await tab.wait_number("+12565550101")
    assert await tab.text("#phone") == "Call (256) 555-0101"


async def test_a_lease_that_ran_out_during_an_outage_is_taken_down(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await short_lease_pool(ops)
    site.pages["/"] = html_page(PAGE, head=snippet(base))
    await tab.page.goto(site.origin + "/")
    await tab.wait_number("+12565550101")
    await tab.page.route("**/get_tracking_number", lambda route: route.abort())
    # The renewals fail; once the lease's time is up the number may be someone else's.
    await tab.until("CallTrack.number() === null")
    await still_the_business_number(tab)
    tab.expected_errors("ERR_FAILED")


async def test_the_queue_form_still_works_once_the_script_is_in(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS)
    site.pages["/"] = html_page(PAGE, head=snippet(base, consent="required"))
    await tab.page.goto(site.origin + "/")
    await tab.until("window.CallTrack && CallTrack.version")
    # A consent manager that cannot know whether the async script has run yet.
    await tab.page.evaluate('(window.CallTrack = window.CallTrack || []).push(["consent", true])')
    await tab.wait_number("+12565550101")
