"""The demo site as a new user meets it: numbers swapped everywhere, a call placed from
the panel, and the call credited to the ad in the URL."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.browser.harness import WAIT_MS, Tab
from tests.support import BACKENDS

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The demo, end to end, on every database."""
    return str(request.param)


def pretty(e164: str) -> str:
    """+16465550120 as the demo page writes it: (646) 555-0120."""
    return f"({e164[2:5]}) {e164[5:8]}-{e164[8:]}"


async def test_the_demo_credits_a_call_to_the_campaign_in_its_url(
    base: str, ops: httpx.AsyncClient, tab: Tab, tmp_path: Path
) -> None:
    await tab.page.goto(base + "/demo?utm_source=google&utm_medium=cpc&gclid=TEST")
    number = await tab.wait_number()
    assert number.startswith("+1646555")
    digits = number[2:]
    area, exchange, line = digits[:3], digits[3:6], digits[6:]
    assert await tab.text("#header-call") == f"Call {pretty(number)}"
    assert await tab.href("#header-call") == "tel:" + number
    assert await tab.text("#hero-phone") == pretty(number)
    assert await tab.href("#hero-call") == "tel:" + digits
    assert await tab.text("#fmt-dots") == f"{area}.{exchange}.{line}"
    assert await tab.text("#fmt-intl") == f"+1 {area} {exchange} {line}"
    assert await tab.text("#fmt-dashes") == f"{area}-{exchange}-{line}"
    assert await tab.text("#fmt-long") == f"1-{area}-{exchange}-{line}"
    assert await tab.text("#fmt-fax") == "(212) 555-0199"
    # The footer arrives late; it is swapped as it arrives.
    await tab.page.wait_for_selector("#footer-call", timeout=WAIT_MS)
    assert await tab.text("#footer-call") == pretty(number)
    assert await tab.href("#footer-call") == "tel:" + number
    # The panel itself (ignored by the snippet) shows what the visit is.
    assert await tab.text("#p-visit") == "utm_source=google · utm_medium=cpc · gclid=TEST"
    assert await tab.text("#p-number") == f"+1 {pretty(number)}"

    # The single-page app's second route.
    await tab.page.click("nav a[href='/demo/services']")
    await tab.page.wait_for_selector("#services-call")
    assert tab.page.url == base + "/demo/services"
    assert await tab.text("#services-call") == f"+1-{area}-{exchange}-{line}"
    assert await tab.href("#services-call") == f"tel:+1-{area}-{exchange}-{line}"
    await tab.page.go_back()
    await tab.page.wait_for_selector("#hero-phone")
    assert await tab.text("#hero-phone") == pretty(number)

    await tab.page.click("#p-call")
    await tab.page.wait_for_selector("#p-result:not([hidden])", timeout=WAIT_MS)
    assert await tab.text("#r-attribution") == "dni"
    assert await tab.text("#r-source") == "google"
    assert await tab.text("#r-medium") == "cpc"
    assert await tab.text("#r-gclid") == "TEST"
    assert await tab.text("#r-talk") == "3 s"
    assert (await tab.text("#p-status")).startswith("Call ended (ANSWER)")

    listed = await ops.get("/v1/calls")
    [call] = listed.json()["items"]
    assert call["to_number"] == number
    assert call["pool"] == "demo"
    assert (call["attribution"], call["source"], call["medium"]) == ("dni", "google", "cpc")
    assert call["forwarded_to"] == "+12125550100"
    assert call["session_id"] == await tab.page.evaluate("CallTrack.sessionId()")

    shot = tmp_path / "demo.png"
    await tab.page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("CALLTRACK_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / "demo.png")
