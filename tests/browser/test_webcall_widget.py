"""The "call from your browser" widget in Chromium, up to the SIP server: loaded only when
asked for, its states and events, and a clear message for every way a call cannot start.

The call itself (registration, audio, attribution) needs the emulator to speak SIP and is
tested with it; here /web_to_call is the service's own or a routed answer, and no SIP
server answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Request,
    Route,
    WebSocket,
    WebSocketRoute,
)
from playwright.async_api import Error as PlaywrightError

from tests.api.helpers import make_pool
from tests.browser.harness import (
    BUSINESS,
    FAKE_MEDIA,
    Site,
    Tab,
    chromium,
    html_page,
    open_tab,
    snippet,
)

PASSWORD = "pw-9f3c-never-shown"  # a routed answer's, looked for in everything logged
STATE = "window.CallTrack.callState()"

# What the page's scripts see, recorded by an init script: each calltrack:call event with
# what callState() answered inside it, and the microphone streams handed out.
RECORD = """
window.__calls = [];
document.addEventListener("calltrack:call", function (event) {
  window.__calls.push([event.detail.state, window.CallTrack.callState(),
    event.detail.message || null]);
});
window.__streams = [];
if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
  var gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = function (constraints) {
    return gum(constraints).then(function (s) { window.__streams.push(s); return s; });
  };
}
"""
NO_WEBRTC = "delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection;"

NO_WEBRTC_TEXT = (
    "This browser cannot make calls from a web page (no WebRTC support). "
    "Please call us by phone instead."
)
DENIED_TEXT = "Microphone access was denied. Allow this site to use the microphone, then try again."
NO_MICROPHONE_TEXT = "No microphone was found. Connect one, then try again."
LIMIT_TEXT = "Too many call attempts from this browser. Please try again in 30 seconds."
REGISTER_TEXT = "Could not sign in to the call server (it could not be reached)."
ENDED_TEXT = "Call ended."
WIDGET = '<div id="webcall" data-calltrack-webcall></div>'
PAGE = f"<h1>Harbor Plumbing</h1><p>Call us: (212) 555-0100</p>{WIDGET}"


@pytest.fixture
async def media_browser() -> AsyncIterator[Browser]:
    """Chromium with a fake microphone, which a context may use once granted."""
    async with chromium(*FAKE_MEDIA) as browser:
        yield browser


@dataclass
class Call:
    """A tab of the customer's site with the widget, and what went over the network."""

    tab: Tab
    requests: list[str] = field(default_factory=list)
    sockets: list[WebSocket] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)
    credentials_asked: list[dict[str, Any]] = field(default_factory=list)

    async def state(self) -> str:
        """What `CallTrack.callState()` answers."""
        return str(await self.tab.page.evaluate(STATE))

    async def wait_state(self, expected: str) -> None:
        """Wait until callState() is `expected`."""
        await self.tab.until(f"{STATE} === {expected!r}")

    async def events(self) -> list[list[Any]]:
        """Each calltrack:call event: [state, callState() inside it, message]."""
        recorded: list[list[Any]] = await self.tab.page.evaluate("window.__calls")
        return recorded

    async def states(self) -> list[str]:
        """The states the events told, in order; each matched callState() when told."""
        events = await self.events()
        for told, answered, _ in events:
            assert told == answered, events
        return [told for told, _, _ in events]

    async def status(self) -> str:
        """The widget's status line."""
        return await self.tab.text("#webcall .ct-webcall-status")

    async def microphones_released(self) -> bool:
        """Whether every microphone track the page was given has been stopped."""
        released: bool = await self.tab.page.evaluate(
            "window.__streams.every(s => s.getTracks().every(t => t.readyState === 'ended'))"
        )
        return released

    def fetched(self, fragment: str) -> list[str]:
        """The URLs requested that contain `fragment`."""
        return [url for url in self.requests if fragment in url]

    def assert_never_logged_the_password(self) -> None:
        """Nothing the page logged holds the routed password."""
        assert not [text for text in self.logged if PASSWORD in text]


async def open_call(
    browser: Browser,
    site: Site,
    base: str,
    *,
    microphone: bool = True,
    init: str = "",
    path: str = "/",
) -> Call:
    """The customer's page with the snippet and the widget, its snippet's number shown."""
    site.pages[path] = html_page(PAGE, head=snippet(base))
    tab = await open_tab(browser)
    call = Call(tab=tab)
    page = tab.page
    if microphone:
        await page.context.grant_permissions(["microphone"], origin=site.origin)
    await page.add_init_script(RECORD + init)

    def on_request(request: Request) -> None:
        call.requests.append(request.url)
        if request.url.endswith("/web_to_call") and request.method == "POST":
            call.credentials_asked.append(request.post_data_json or {})

    def on_console(message: ConsoleMessage) -> None:
        call.logged.append(message.text)

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("websocket", lambda ws: call.sockets.append(ws))
    await page.goto(site.origin + path)
    await tab.wait_number()
    await page.wait_for_selector("#webcall .ct-webcall-call")
    return call


async def close(call: Call) -> None:
    """Close the tab's context; the page logged no error it was not expected to."""
    call.assert_never_logged_the_password()
    await call.tab.page.context.close()
    assert call.tab.errors == [], f"console errors: {call.tab.errors}"


def problem(status: int, detail: str, **headers: str) -> dict[str, Any]:
    """A routed problem+json answer."""
    return {
        "status": status,
        "content_type": "application/problem+json",
        "headers": headers,
        "body": json.dumps(
            {"type": "about:blank", "title": "Error", "status": status, "detail": detail}
        ),
    }


def credentials(session_id: str, websocket_url: str) -> dict[str, Any]:
    """A routed 200 of /web_to_call, as the service answers it."""
    user = "wtc-3f9a0c"
    return {
        "status": 200,
        "content_type": "application/json",
        "body": json.dumps(
            {
                "status": "success",
                "session_id": session_id,
                "websocket_url": websocket_url,
                "uri": f"sip:{user}@calltrack.emulator",
                "username": user,
                "password": PASSWORD,
                "realm": "calltrack.emulator",
                "dial": f"sip:web-{session_id}@calltrack.emulator",
                "headers": {"X-Calltrack-Session": session_id},
                "expires_at": "2030-01-01T00:10:00Z",
                "expires_in": 600,
            }
        ),
    }


def closed_port() -> int:
    """A 127.0.0.1 port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def route_credentials(call: Call, site: Site, answer: dict[str, Any]) -> None:
    """Answer the page's /web_to_call with `answer` (and the CORS the service would add)."""

    async def handle(route: Route) -> None:
        headers = {
            "Access-Control-Allow-Origin": site.origin,
            "Access-Control-Expose-Headers": "Retry-After",
            **answer.get("headers", {}),
        }
        await route.fulfill(**{**answer, "headers": headers})

    await call.tab.page.route("**/web_to_call", handle)


@pytest.fixture
async def pool(ops: httpx.AsyncClient) -> None:
    """Pool `default`, with a number for the page to show."""
    await make_pool(ops, size=1, fallback_number=BUSINESS)


# --- loaded only when asked for ---------------------------------------------------------------


async def test_nothing_of_the_call_loads_until_the_visitor_asks(
    base: str, pool: None, site: Site, media_browser: Browser
) -> None:
    call = await open_call(media_browser, site, base)
    page = call.tab.page
    session_id = await page.evaluate("CallTrack.sessionId()")
    port = closed_port()
    await route_credentials(call, site, credentials(session_id, f"ws://127.0.0.1:{port}/sip"))
    # The snippet put a button and an empty status line in the marked element.
    assert await call.state() == "idle"
    button = page.locator("#webcall .ct-webcall-call")
    assert await button.inner_text() == "Call from your browser"
    assert await button.is_enabled()
    assert await page.locator("#webcall .ct-webcall-status").get_attribute("role") == "status"
    assert await call.status() == ""
    await page.wait_for_timeout(500)
    assert call.fetched("/webcall.css"), "the button's stylesheet comes with it"
    assert not call.fetched("/webcall.js")
    assert not call.fetched("jssip")
    assert not call.fetched("/web_to_call")
    assert await page.evaluate("typeof window.JsSIP") == "undefined"
    assert await call.events() == []

    await button.click()
    await call.wait_state("failed")
    # Loaded from the snippet's origin, the bundle under its versioned URL.
    assert call.fetched("/webcall.js") == [base + "/webcall.js"]
    [bundle] = call.fetched("jssip")
    assert bundle.startswith(base + "/webcall/jssip.min.js?v=")
    assert call.credentials_asked == [{"session_id": session_id, "pool": "default"}]
    assert await call.states() == ["connecting", "failed"]
    # The SIP server could not be reached: registration failed, and the agent was stopped
    # rather than left retrying.
    assert await call.status() == REGISTER_TEXT
    assert (await call.events())[-1][2] == REGISTER_TEXT
    assert len(call.sockets) == 1
    assert call.sockets[0].url == f"ws://127.0.0.1:{port}/sip"
    await page.wait_for_timeout(3000)  # past JsSIP's first reconnection attempt
    assert len(call.sockets) == 1
    assert all(ws.is_closed() for ws in call.sockets)
    assert await call.microphones_released()
    assert await page.evaluate("window.__streams.length") == 1
    assert await button.is_enabled()
    assert await page.locator("#webcall .ct-webcall-hangup").is_hidden()
    assert await page.evaluate("typeof window.JsSIP") == "object"
    call.tab.expected_errors("WebSocket connection")
    await close(call)


# --- no call possible -------------------------------------------------------------------------


async def test_without_webrtc_the_call_fails_before_asking_the_service(
    base: str, pool: None, site: Site, media_browser: Browser
) -> None:
    call = await open_call(media_browser, site, base, init=NO_WEBRTC)
    page = call.tab.page
    assert await page.evaluate("typeof window.RTCPeerConnection") == "undefined"
    # At once, before webcall.js arrives.
    assert await page.evaluate("CallTrack.call(), CallTrack.callState()") == "connecting"
    await call.wait_state("failed")
    assert await call.states() == ["connecting", "failed"]
    assert (await call.events())[-1][2] == NO_WEBRTC_TEXT
    assert await call.status() == NO_WEBRTC_TEXT
    assert await page.locator("#webcall").get_attribute("data-ct-webcall-state") == "failed"
    assert not call.fetched("/web_to_call")
    assert not call.fetched("jssip")
    assert await page.evaluate("window.__streams.length") == 0
    assert await page.locator("#webcall .ct-webcall-call").is_enabled()
    # Asked again, it fails again the same way.
    await page.click("#webcall .ct-webcall-call")
    await call.tab.until("window.__calls.length === 4")
    assert await call.states() == ["connecting", "failed", "connecting", "failed"]
    assert not call.fetched("/web_to_call")
    await close(call)


@pytest.mark.parametrize(
    ("fake_device", "expected"), [(True, DENIED_TEXT), (False, NO_MICROPHONE_TEXT)]
)
async def test_without_the_microphone_the_call_fails_with_no_connection_left(
    base: str,
    pool: None,
    site: Site,
    media_browser: Browser,
    browser: Browser,
    fake_device: bool,
    expected: str,
) -> None:
    # With a microphone the context was not granted: denied. Without any: none found.
    call = await open_call(media_browser if fake_device else browser, site, base, microphone=False)
    page = call.tab.page
    await page.click("#webcall .ct-webcall-call")
    await call.wait_state("failed")
    assert await call.states() == ["connecting", "failed"]
    assert await call.status() == expected
    assert (await call.events())[-1][2] == expected
    # The microphone is asked for first: no credentials spent, no SIP connection made.
    assert not call.fetched("/web_to_call")
    assert call.sockets == []
    assert await page.evaluate("window.__streams.length") == 0
    await close(call)


async def test_credentials_refused_for_asking_too_often_say_when_to_try_again(
    base: str, pool: None, site: Site, media_browser: Browser
) -> None:
    call = await open_call(media_browser, site, base)
    page = call.tab.page
    await route_credentials(
        call, site, problem(429, "too many requests for this visit", **{"Retry-After": "30"})
    )
    await page.evaluate("CallTrack.call()")
    await call.wait_state("failed")
    assert await call.states() == ["connecting", "failed"]
    assert await call.status() == LIMIT_TEXT
    assert len(call.credentials_asked) == 1
    assert call.sockets == []
    assert await call.microphones_released()
    call.tab.expected_errors("429")
    await close(call)


async def test_credentials_refused_show_the_services_reason(
    base: str, pool: None, site: Site, media_browser: Browser
) -> None:
    call = await open_call(media_browser, site, base)
    page = call.tab.page
    await route_credentials(call, site, problem(404, "no session 'x' is known"))
    await page.evaluate("CallTrack.call()")
    await call.wait_state("failed")
    assert await call.status() == "The call could not start: no session 'x' is known"
    assert call.sockets == []
    call.tab.expected_errors("404")
    await close(call)


# --- hanging up before the call is placed -----------------------------------------------------


async def test_hangup_while_connecting_aborts_cleanly(
    base: str, pool: None, site: Site, media_browser: Browser
) -> None:
    call = await open_call(media_browser, site, base)
    page = call.tab.page
    session_id = await page.evaluate("CallTrack.sessionId()")
    held: list[Route] = []
    arrived = asyncio.Event()

    async def hold(route: Route) -> None:
        held.append(route)
        arrived.set()

    await page.route("**/web_to_call", hold)
    button = page.locator("#webcall .ct-webcall-call")
    hangup = page.locator("#webcall .ct-webcall-hangup")
    await button.click()
    await asyncio.wait_for(arrived.wait(), 15)
    # Waiting for the service: connecting, the call button disabled, hang up offered.
    assert await call.state() == "connecting"
    assert await button.is_disabled()
    assert await hangup.is_visible()
    assert await page.locator("#webcall .ct-webcall-mute").is_hidden()
    assert await call.status() == "Connecting to the call server\u2026"
    await hangup.click()
    assert await call.state() == "ended"
    assert await call.states() == ["connecting", "ended"]
    assert await call.status() == ENDED_TEXT
    assert await button.is_enabled()
    assert await hangup.is_hidden()
    assert await call.microphones_released()
    # The answer arriving after all opens nothing: the request was aborted.
    with contextlib.suppress(PlaywrightError):
        await held[0].fulfill(**credentials(session_id, f"ws://127.0.0.1:{closed_port()}/sip"))
    await page.wait_for_timeout(1000)
    assert call.sockets == []
    assert await call.state() == "ended"
    assert await call.states() == ["connecting", "ended"]
    # hangup() with no call under way changes nothing.
    await page.evaluate("CallTrack.hangup()")
    assert await call.states() == ["connecting", "ended"]
    await close(call)


async def test_hangup_before_the_widget_arrives_starts_nothing(
    base: str, pool: None, site: Site, media_browser: Browser
) -> None:
    call = await open_call(media_browser, site, base)
    page = call.tab.page
    held: list[Route] = []
    arrived = asyncio.Event()

    async def hold(route: Route) -> None:
        held.append(route)
        arrived.set()

    await page.route("**/webcall.js", hold)
    await page.evaluate("CallTrack.call()")
    await asyncio.wait_for(arrived.wait(), 15)
    assert await call.state() == "connecting"
    assert await page.locator("#webcall .ct-webcall-call").is_disabled()
    await page.evaluate("CallTrack.call()")  # a second call() while connecting: ignored
    await page.evaluate("CallTrack.hangup()")
    assert await call.state() == "ended"
    await held[0].continue_()
    await call.tab.until("document.querySelector('#webcall .ct-webcall-hangup')")
    await page.wait_for_timeout(500)
    assert await call.states() == ["connecting", "ended"]
    assert not call.fetched("/web_to_call")
    assert await page.evaluate("window.__streams.length") == 0
    assert await page.locator("#webcall .ct-webcall-call").is_enabled()
    await close(call)


# --- the demo ---------------------------------------------------------------------------------


async def test_the_demo_panel_offers_the_call_under_its_csp(
    base: str, media_browser: Browser
) -> None:
    tab = await open_tab(media_browser)
    requests: list[str] = []
    tab.page.on("request", lambda request: requests.append(request.url))
    await tab.page.add_init_script(RECORD)
    await tab.page.goto(base + "/demo")
    await tab.wait_number()
    widget = tab.page.locator("#p-webcall[data-calltrack-webcall]")
    await widget.locator(".ct-webcall-call").wait_for()
    assert await widget.locator(".ct-webcall-call").inner_text() == "Call from your browser"
    assert not [url for url in requests if "webcall.js" in url or "jssip" in url]
    # Asked too often: the widget, its stylesheet and JsSIP all load under the page's
    # Content-Security-Policy (any violation would be a console error).
    await tab.page.context.grant_permissions(["microphone"], origin=base)

    async def limited(route: Route) -> None:
        await route.fulfill(**problem(429, "slow down", **{"Retry-After": "120"}))

    await tab.page.route("**/web_to_call", limited)
    await widget.locator(".ct-webcall-call").click()
    await tab.until(f"{STATE} === 'failed'")
    assert [url for url in requests if "/webcall.js" in url]
    assert [url for url in requests if "/webcall/jssip.min.js" in url]
    assert await widget.locator(".ct-webcall-status").inner_text() == (
        "Too many call attempts from this browser. Please try again in 2 minutes."
    )
    assert await tab.page.evaluate("window.__calls.map(c => c[0])") == ["connecting", "failed"]
    tab.expected_errors("429")
    await tab.page.context.close()
    assert tab.errors == [], f"console errors: {tab.errors}"


# --- what the widget does with SIP's answers --------------------------------------------------
# Not a SIP server: Playwright answers the page's WebSocket itself, with canned replies,
# no digest challenge and no media, to see the states and messages each answer leads to.


def sip_reply(request: str, code: int, reason: str, *extra: str) -> str:
    """A response to a SIP request: its Via, From, Call-ID and CSeq, a To-tag, no body."""
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")
    copied = [
        line
        for line in head[1:]
        if line.split(":", 1)[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")
    ]
    copied = [f"{line};tag=ct1" if line.lower().startswith("to:") else line for line in copied]
    return "\r\n".join([f"SIP/2.0 {code} {reason}", *copied, *extra, "Content-Length: 0", "", ""])


def sip_header(request: str, name: str) -> str | None:
    """The value of a header of a SIP request, or None."""
    for line in request.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


@pytest.mark.parametrize("ending", ["busy", "hangup"])
async def test_ringing_then_busy_or_hung_up_and_the_agent_unregisters(
    base: str, pool: None, site: Site, media_browser: Browser, ending: str
) -> None:
    call = await open_call(media_browser, site, base)
    page = call.tab.page
    session_id = await page.evaluate("CallTrack.sessionId()")
    url = f"ws://127.0.0.1:{closed_port()}/sip"
    await route_credentials(call, site, credentials(session_id, url))
    received: list[str] = []

    def peer(ws: WebSocketRoute) -> None:
        def on_message(message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode()
            if not text.strip():
                return  # a keep-alive
            received.append(text)
            method = text.split(" ", 1)[0]
            if method == "REGISTER":
                contact = sip_header(text, "Contact")
                expires = sip_header(text, "Expires") or "600"
                ws.send(sip_reply(text, 200, "OK", f"Contact: {contact};expires={expires}"))
            elif method == "INVITE":
                ws.send(sip_reply(text, 180, "Ringing"))
                if ending == "busy":
                    asyncio.get_running_loop().call_later(
                        1, lambda: ws.send(sip_reply(text, 486, "Busy Here"))
                    )
            elif method == "CANCEL":
                ws.send(sip_reply(text, 200, "OK"))

        ws.on_message(on_message)

    await page.route_web_socket(url, peer)
    await page.click("#webcall .ct-webcall-call")
    await call.wait_state("ringing")
    assert await call.status() == "Ringing\u2026"
    assert await page.locator("#webcall .ct-webcall-hangup").is_visible()
    assert await page.locator("#webcall .ct-webcall-call").is_disabled()
    # Registered as the answer said, then dialled what it said with its header.
    register, invite = received[:2]
    assert register.startswith("REGISTER sip:calltrack.emulator SIP/2.0\r\n")
    assert "<sip:wtc-3f9a0c@calltrack.emulator>" in (sip_header(register, "From") or "")
    assert invite.startswith(f"INVITE sip:web-{session_id}@calltrack.emulator SIP/2.0\r\n")
    assert sip_header(invite, "X-Calltrack-Session") == session_id
    assert "m=audio" in invite
    assert "m=video" not in invite
    if ending == "busy":
        await call.wait_state("failed")
        assert await call.states() == ["connecting", "ringing", "failed"]
        assert await call.status() == "The line is busy (Busy, SIP 486)."
        assert (await call.events())[-1][2] == "The line is busy (Busy, SIP 486)."
    else:
        await page.click("#webcall .ct-webcall-hangup")
        assert await call.states() == ["connecting", "ringing", "ended"]
        assert await call.status() == ENDED_TEXT
    # Released: the call cancelled (or acknowledged), the registration withdrawn, the
    # microphone stopped.
    deadline = asyncio.get_running_loop().time() + 5
    while not any(sip_header(m, "Expires") == "0" for m in received):
        assert asyncio.get_running_loop().time() < deadline, received
        await asyncio.sleep(0.05)
    methods = [m.split(" ", 1)[0] for m in received]
    assert methods[:2] == ["REGISTER", "INVITE"]
    assert ("ACK" if ending == "busy" else "CANCEL") in methods
    assert await call.microphones_released()
    assert await page.locator("#webcall .ct-webcall-call").is_enabled()
    assert await page.locator("#webcall .ct-webcall-hangup").is_hidden()
    await close(call)
