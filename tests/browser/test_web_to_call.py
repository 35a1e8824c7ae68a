"""Web-To-Call end to end in real Chromium: the demo's widget registers with the emulator
over SIP/WebSocket, calls, exchanges audio with its aiortc peer, and the call is credited
to the visit exactly.

Where the machine allows it, these tests run inside a network namespace of their own with
only `lo` up (test_web_to_call_netns.py starts them there), so that Chromium sees no other
interface and nothing can leave the machine; elsewhere they run as they are, and media
still stays on 127.0.0.1: the emulator answers with loopback candidates only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, Page, Response

from app.state import utc_now
from tests.browser import netns
from tests.browser.harness import FAKE_MEDIA, LOOPBACK_CALLS, WAIT_MS, chromium
from tests.e2e.live import BOUND, live_service
from tests.support import ADMIN, DOMAIN

pytestmark = pytest.mark.skipif(
    netns.available() and not netns.inside(),
    reason="run inside their own network namespace by test_web_to_call_netns.py",
)

BUSINESS = "+12125550100"  # the demo pool's destination
KEY = "XI" + "5" * 32  # the emulated Cloudonix's API key
EMULATOR = {"Authorization": f"Bearer {KEY}"}
VISIT = "/demo?utm_source=newsletter&utm_medium=email&utm_campaign=november"
STATE = "CallTrack.callState()"
# Every RTCPeerConnection the page makes, for its packet counters.
KEEP_PEERS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""
PACKETS = """async () => {
  let got = 0, sent = 0;
  for (const pc of window.__pcs) {
    (await pc.getStats()).forEach(r => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') got += r.packetsReceived;
      if (r.type === 'outbound-rtp' && r.kind === 'audio') sent += r.packetsSent;
    });
  }
  return [got, sent];
}"""


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[tuple[str, FastAPI]]:
    """The service with WebSockets on (the emulator's SIP socket), on the real clock."""
    async with live_service(
        database_url, utc_now, ws="websockets-sansio", emulator_api_key=KEY
    ) as served:
        yield served


@pytest.fixture
async def phone_browser() -> AsyncIterator[Browser]:
    """Chromium with a fake microphone, offering loopback candidates and no mDNS names."""
    async with chromium(*FAKE_MEDIA, *LOOPBACK_CALLS) as browser:
        yield browser


class Visitor:
    """The demo page in a tab, and the credentials it was handed."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.credentials: list[dict[str, Any]] = []
        self.errors: list[str] = []

    async def until(self, expression: str) -> None:
        """Wait until `expression` (may be a promise) holds in the page.

        Polled with evaluate, which the page's CSP does not govern; wait_for_function
        compiles its predicate in the page, which the demo's CSP (rightly) forbids.
        """
        for _ in range(WAIT_MS // 50):
            if await self.page.evaluate(f"async () => !!(await ({expression}))"):
                return
            await self.page.wait_for_timeout(50)
        raise AssertionError(f"never held: {expression}")

    async def state(self) -> str:
        """What CallTrack.callState() answers."""
        return str(await self.page.evaluate(STATE))

    async def packets(self) -> tuple[int, int]:
        """Audio packets received and sent by the page."""
        got, sent = await self.page.evaluate(PACKETS)
        return int(got), int(sent)


async def visit(browser: Browser, base: str) -> Visitor:
    """Open the demo from a newsletter link, the snippet's session in place."""
    context = await browser.new_context(permissions=["microphone"])
    page = await context.new_page()
    visitor = Visitor(page)

    async def on_response(response: Response) -> None:
        if response.url.endswith("/web_to_call") and response.ok:
            visitor.credentials.append(await response.json())

    page.on("response", on_response)
    page.on("console", lambda m: visitor.errors.append(m.text) if m.type == "error" else None)
    await page.add_init_script(KEEP_PEERS)
    await page.goto(base + VISIT)
    await page.wait_for_selector("#p-webcall .ct-webcall-call", timeout=WAIT_MS)
    await visitor.until("window.CallTrack && CallTrack.sessionId()")
    return visitor


async def business_talks(ops: httpx.AsyncClient, seconds: float) -> None:
    """The business answers at once and talks `seconds` (virtual: the emulator runs 100x)."""
    put = await ops.put(
        f"/emulator/behaviours/{BUSINESS}", json={"answer_after": 1, "talk": seconds}
    )
    assert put.status_code == 200, put.text


async def subscriber_calls(ops: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The emulator's subscriber calls."""
    listed = await ops.get("/emulator/calls")
    calls: list[dict[str, Any]] = listed.json()
    return [c for c in calls if c["direction"] == "subscriber"]


@pytest.fixture
async def ops(service: tuple[str, FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    """The ops API (and the emulator's control API) of the live service."""
    async with httpx.AsyncClient(base_url=service[0], headers=ADMIN, timeout=BOUND) as client:
        yield client


async def test_a_browser_call_carries_its_visit_and_audio_flows_both_ways(
    service: tuple[str, FastAPI],
    ops: httpx.AsyncClient,
    phone_browser: Browser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    base, app = service
    tab = await visit(phone_browser, base)
    await business_talks(ops, 3000)
    session_id = await tab.page.evaluate("CallTrack.sessionId()")

    await tab.page.click("#p-webcall .ct-webcall-call")
    await tab.until(f"{STATE} === 'connected'")
    # Audio both ways: packets on the browser's side, frames on the emulator's.
    await tab.until(f"({PACKETS})().then(([got, sent]) => got > 50 && sent > 50)")
    [live] = await subscriber_calls(ops)
    assert live["state"] == "active"
    assert live["sip_headers"] == {"X-Calltrack-Session": session_id}
    assert live["to"] == f"web-{session_id}"

    await tab.page.evaluate("CallTrack.hangup()")
    await tab.until(f"{STATE} === 'ended'")
    ended: list[dict[str, Any]] = []

    async def over() -> bool:
        ended[:] = await subscriber_calls(ops)
        return bool(ended) and ended[0]["state"] == "ended" and ended[0]["media"] is not None

    for _ in range(300):
        if await over():
            break
        await tab.page.wait_for_timeout(50)
    [done] = ended
    assert done["hangup"] == "caller"
    assert done["disposition"] == "ANSWER"
    assert done["media"]["frames_received"] > 25  # 20 ms frames: over half a second
    assert done["media"]["frames_sent"] > 25
    assert done["cdr_sent"] is True

    # The call as the service stored it: the visit's, exactly, with its UTM.
    listed = await ops.get("/v1/calls")
    [call] = listed.json()["items"]
    assert (call["attribution"], call["session_id"]) == ("web_to_call", session_id)
    assert (call["source"], call["medium"], call["campaign"]) == ("newsletter", "email",
                                                                  "november")  # fmt: skip
    assert (call["pool"], call["direction"], call["forwarded_to"]) == ("demo", "subscriber",
                                                                       BUSINESS)  # fmt: skip
    day = datetime.now(UTC).date().isoformat()
    report = await ops.get(
        "/v1/reports/attribution", params={"from": day, "to": day, "group_by": "source"}
    )
    rows = {row["group"]: row for row in report.json()["rows"]}
    assert rows["newsletter"]["calls"] == 1

    # The subscriber is deleted once the call has ended.
    [handed] = tab.credentials
    assert await app.state.ct.web_call_keeper.run_once() == 1
    gone = await ops.get(
        f"/emulator/customers/self/domains/{DOMAIN}/subscribers/{handed['username']}",
        headers=EMULATOR,
    )
    assert gone.status_code == 404
    # The password went to the page and nowhere else.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert handed["password"] not in logged
    assert tab.errors == []


async def test_the_business_hanging_up_ends_the_browsers_call(
    service: tuple[str, FastAPI], ops: httpx.AsyncClient, phone_browser: Browser
) -> None:
    base, _ = service
    tab = await visit(phone_browser, base)
    await business_talks(ops, 200)  # two real seconds
    await tab.page.click("#p-webcall .ct-webcall-call")
    await tab.until(f"{STATE} === 'connected'")
    await tab.until(f"{STATE} === 'ended'")
    for _ in range(300):
        calls = await subscriber_calls(ops)
        if calls and calls[0]["media"] is not None:
            break
        await tab.page.wait_for_timeout(50)
    [done] = calls
    assert done["hangup"] != "caller"
    assert done["disposition"] == "ANSWER"
    assert done["media"]["frames_received"] > 20
    assert tab.errors == []


async def test_wrong_or_deleted_credentials_cannot_register(
    service: tuple[str, FastAPI], ops: httpx.AsyncClient, phone_browser: Browser
) -> None:
    base, _app = service
    tab = await visit(phone_browser, base)
    session_id = await tab.page.evaluate("CallTrack.sessionId()")
    async with httpx.AsyncClient(base_url=base, timeout=BOUND) as public:
        issued = await public.post("/web_to_call", json={"session_id": session_id, "pool": "demo"})
    assert issued.status_code == 200, issued.text
    creds = issued.json()
    await tab.page.add_script_tag(url=base + "/webcall/jssip.min.js")
    register = """async ([c, password]) => new Promise(resolve => {
      const ua = new JsSIP.UA({sockets: [new JsSIP.WebSocketInterface(c.websocket_url)],
        uri: c.uri, password, register: true, session_timers: false});
      ua.on('registered', () => { ua.stop(); resolve('registered'); });
      ua.on('registrationFailed', e => { ua.stop(); resolve('failed: ' + e.cause); });
      ua.start();
    })"""
    assert await tab.page.evaluate(register, [creds, "not-the-password"]) == "failed: Rejected"
    assert await tab.page.evaluate(register, [creds, creds["password"]]) == "registered"
    deleted = await ops.delete(
        f"/emulator/customers/self/domains/{DOMAIN}/subscribers/{creds['username']}",
        headers=EMULATOR,
    )
    assert deleted.status_code == 200
    assert await tab.page.evaluate(register, [creds, creds["password"]]) == "failed: Rejected"
