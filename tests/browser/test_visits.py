"""dni.js keeps the visit: session in first-party storage, heartbeat, context capture."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from playwright.async_api import Route

from tests.api.helpers import make_pool
from tests.browser.harness import BUSINESS, Site, Tab, html_page, short_lease_pool, snippet

LISTENER = (
    "<script>window.events = []; addEventListener('calltrack:number',"
    " function (e) { events.push(e.detail); });</script>"
)


async def visit_of(ops: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    """The session as the ops API shows it."""
    found = await ops.get(f"/v1/sessions/{session_id}")
    assert found.status_code == 200, found.text
    result: dict[str, Any] = found.json()
    return result


async def test_a_reload_shows_the_same_number_at_once_and_keeps_the_visit(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=3, fallback_number=BUSINESS)
    site.pages["/"] = html_page(
        '<p id="phone">Call (212) 555-0100</p>', head=LISTENER + snippet(base)
    )
    await tab.page.goto(site.origin + "/")
    first = await tab.wait_number()
    session_id = await tab.page.evaluate("CallTrack.sessionId()")
    [event] = await tab.page.evaluate("events")
    assert event["number"] == first
    assert event["tracked"] is True
    assert event["sessionId"] == session_id
    assert datetime.fromisoformat(event["expiresAt"]) > datetime.now(UTC)
    assert await tab.page.evaluate("CallTrack.lease()") == event  # for code that runs later

    # The service answers slowly now: the stored live lease is shown before it does.
    answered = asyncio.Event()

    async def slow(route: Route) -> None:
        await asyncio.sleep(1.5)
        await route.continue_()
        answered.set()

    await tab.page.route("**/get_tracking_number", slow)
    await tab.page.reload()
    await tab.wait_number(first)
    assert not answered.is_set()
    assert await tab.text("#phone") == "Call " + f"({first[2:5]}) {first[5:8]}-{first[8:]}"
    await asyncio.wait_for(answered.wait(), 10)
    await tab.page.wait_for_function("events.length >= 2")
    assert await tab.number() == first
    # Each page's first request names the visit and carries the page (should the service
    # have lost the session); heartbeats carry the session alone.
    assert tab.asked[1] == {
        "pool": "default",
        "session_id": session_id,
        "context": {"landing_url": site.origin + "/"},
    }
    visit = await visit_of(ops, session_id)
    assert [lease["number"] for lease in visit["leases"]] == [first]


async def test_the_heartbeat_keeps_the_lease_past_its_ttl_and_stops_while_hidden(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await short_lease_pool(ops)
    site.pages["/"] = html_page("<p>Call (212) 555-0100</p>", head=snippet(base))
    await tab.page.goto(site.origin + "/")
    number = await tab.wait_number()
    session_id = await tab.page.evaluate("CallTrack.sessionId()")

    await asyncio.sleep(10)  # two and a half lease lifetimes
    visit = await visit_of(ops, session_id)
    [lease] = visit["leases"]
    assert lease["live"] is True
    assert lease["number"] == number
    assert await tab.number() == number
    assert len(tab.asked) >= 4  # renewed about every half lease
    assert all(set(body) == {"pool", "session_id"} for body in tab.asked[1:])

    # Hidden: no renewals, and the lease runs out.
    await tab.page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () =>"
        " 'hidden'}); document.dispatchEvent(new Event('visibilitychange'));"
    )
    asked_when_hidden = len(tab.asked)
    await asyncio.sleep(6)
    assert len(tab.asked) == asked_when_hidden
    [lease] = (await visit_of(ops, session_id))["leases"]
    assert lease["live"] is False

    # Visible again: it asks at once and holds a number again.
    await tab.page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () =>"
        " 'visible'}); document.dispatchEvent(new Event('visibilitychange'));"
    )
    await asyncio.sleep(1)
    assert len(tab.asked) == asked_when_hidden + 1
    assert tab.asked[-1]["session_id"] == session_id
    leases = (await visit_of(ops, session_id))["leases"]
    assert any(lease["live"] for lease in leases)


async def test_a_new_campaign_or_a_long_pause_starts_a_new_visit(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=3, fallback_number=BUSINESS)
    site.pages["/"] = html_page("<p>Call (212) 555-0100</p>", head=snippet(base))
    await tab.page.goto(site.origin + "/?utm_source=google&utm_medium=cpc")
    await tab.wait_number()
    google = await tab.page.evaluate("CallTrack.sessionId()")

    await tab.page.goto(site.origin + "/")  # a later page of the same visit
    await tab.wait_number()
    assert await tab.page.evaluate("CallTrack.sessionId()") == google

    await tab.page.goto(site.origin + "/?utm_source=newsletter&utm_medium=email")
    await tab.wait_number()
    newsletter = await tab.page.evaluate("CallTrack.sessionId()")
    assert newsletter != google
    assert (await visit_of(ops, newsletter))["context"]["utm_source"] == "newsletter"
    assert (await visit_of(ops, google))["context"]["utm_source"] == "google"

    # Thirty idle minutes end a visit, as in web analytics.
    await tab.page.evaluate(
        "var k = 'calltrack:default', s = JSON.parse(localStorage.getItem(k));"
        " s.seen -= 31 * 60 * 1000; localStorage.setItem(k, JSON.stringify(s));"
    )
    await tab.page.goto(site.origin + "/")
    await tab.wait_number()
    assert await tab.page.evaluate("CallTrack.sessionId()") not in (google, newsletter)


async def test_the_landing_page_click_ids_referrer_and_ga_client_id_reach_the_session(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS)
    query = (
        "utm_source=google&utm_medium=cpc&utm_campaign=spring&utm_term=plumber"
        "&utm_content=ad1&gclid=G1&gbraid=GB&wbraid=WB&msclkid=MS&fbclid=FB"
    )
    site.pages["/from"] = html_page(f'<a id="go" href="/landing?{query}">go</a>')
    site.pages["/landing"] = html_page(
        "<p>Call (212) 555-0100</p>",
        head='<script>document.cookie = "_ga=GA1.1.1234567890.1700000000; path=/";</script>'
        + snippet(base),
    )
    await tab.page.goto(site.origin + "/from")
    await tab.page.click("#go")
    await tab.wait_number()
    session_id = await tab.page.evaluate("CallTrack.sessionId()")
    context = (await visit_of(ops, session_id))["context"]
    assert context["landing_url"] == f"{site.origin}/landing?{query}"
    assert context["referrer"] == f"{site.origin}/from"
    expected = {
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "spring",
        "utm_term": "plumber",
        "utm_content": "ad1",
        "gclid": "G1",
        "gbraid": "GB",
        "wbraid": "WB",
        "msclkid": "MS",
        "fbclid": "FB",
        "ga_client_id": "1234567890.1700000000",
    }
    assert {key: context[key] for key in expected} == expected
    assert "Chrome" in context["user_agent"]
    # Nothing but the session in the page's storage, and no cookie of ours.
    assert list((await tab.storage()).keys()) == ["calltrack:default"]
    assert "calltrack" not in await tab.page.evaluate("document.cookie")


async def test_a_visitor_whose_clock_is_wrong_renews_at_the_heartbeat_not_in_a_loop(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS, lease_ttl_seconds=600)
    # This device's clock runs 11 minutes fast: every expires_at looks past already.
    await tab.page.context.add_init_script(
        "(() => { const real = Date.now; Date.now = () => real() + 11 * 60 * 1000; })();"
    )
    site.pages["/"] = html_page("<p>Call (212) 555-0100</p>", head=snippet(base, heartbeat=5))
    await tab.page.goto(site.origin + "/")
    number = await tab.wait_number()
    await asyncio.sleep(7)
    # The first request and one heartbeat (5 s), not one request a second.
    assert len(tab.asked) == 2
    assert await tab.number() == number
