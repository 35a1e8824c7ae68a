"""Real Chromium against the service on 127.0.0.1, and a customer's site on another origin."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright

from tests.api.helpers import make_pool

CHROMIUM = os.environ.get("CALLTRACK_CHROMIUM", "/usr/bin/chromium")
BUSINESS = "+12125550100"  # the number the customer's pages print
WAIT_MS = 15_000  # longest any browser wait may take


# A fake microphone a context may use once granted; the remote audio plays unattended.
FAKE_MEDIA = ("--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required")
# For real WebRTC calls to the emulator: the microphone granted without a prompt, loopback
# candidates offered (without it Chromium gathers none on 127.0.0.1), no mDNS names.
LOOPBACK_CALLS = (
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-gpu",
)


@asynccontextmanager
async def chromium(*extra: str) -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (once per browser, before any I/O)
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", *extra],
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Site:
    """A customer's website: pages by path, served from its own origin."""

    origin: str
    pages: dict[str, str] = field(default_factory=dict)


@contextmanager
def customer_site() -> Iterator[Site]:
    """Serve `Site.pages` on a free 127.0.0.1 port until the block ends."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?", 1)[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write((body or "not found").encode())

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(origin=f"http://127.0.0.1:{server.server_address[1]}", pages=pages)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def snippet(service: str, *, pool: str = "default", numbers: str = BUSINESS, **data: Any) -> str:
    """The script tag as a customer pastes it; `data` become data-* attributes."""
    attributes = {"pool": pool, "numbers": numbers} | {
        k.replace("_", "-"): v for k, v in data.items()
    }
    rendered = "".join(f' data-{k}="{escape(str(v))}"' for k, v in attributes.items())
    return f'<script async src="{service}/dni.js"{rendered}></script>'


async def short_lease_pool(ops: httpx.AsyncClient) -> None:
    """Pool `default` with one number, leased for 4 s and free again at once."""
    await make_pool(
        ops,
        size=1,
        fallback_number=BUSINESS,
        lease_ttl_seconds=4,
        cooldown_seconds=0,
        match_window_seconds=0,
    )


def html_page(body: str, *, head: str = "") -> str:
    """A complete page: no favicon request, the snippet (if any) in `head`."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<link rel="icon" href="data:,">{head}</head><body>{body}</body></html>'
    )


@dataclass
class Tab:
    """A page of a fresh browser context, with what it logged and asked the service."""

    page: Page
    errors: list[str] = field(default_factory=list)
    asked: list[dict[str, Any]] = field(default_factory=list)

    async def number(self) -> str | None:
        """What `CallTrack.number()` answers (None before the snippet ran)."""
        value = await self.page.evaluate("window.CallTrack ? window.CallTrack.number() : null")
        return str(value) if value is not None else None

    async def until(self, expression: str) -> None:
        """Wait until a JS expression is truthy, polling from outside the page (a page
        whose CSP forbids eval cannot run Playwright's own in-page polling)."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while not await self.page.evaluate(f"() => !!({expression})"):
            assert time.monotonic() < deadline, f"still false after {WAIT_MS} ms: {expression}"
            await asyncio.sleep(0.05)

    async def wait_number(self, expected: str | None = None) -> str:
        """Wait until the snippet shows a tracking number (this one, if given)."""
        shown = "window.CallTrack && window.CallTrack.number()"
        await self.until(shown if expected is None else f"{shown} === {expected!r}")
        number = await self.number()
        assert number is not None
        return number

    async def text(self, selector: str) -> str:
        """The text of the element."""
        return await self.page.locator(selector).inner_text()

    async def href(self, selector: str) -> str | None:
        """The element's href attribute as written in the DOM."""
        return await self.page.locator(selector).get_attribute("href")

    def expected_errors(self, fragment: str) -> None:
        """The browser logged errors, each about `fragment` (a refused request, say), and
        the page none of its own; they are then cleared for the end-of-test check."""
        assert self.errors, f"no console error about {fragment}"
        assert all(fragment in error for error in self.errors), self.errors
        self.errors.clear()

    async def storage(self) -> dict[str, str]:
        """Everything in the page's localStorage."""
        stored: dict[str, str] = await self.page.evaluate("Object.assign({}, localStorage)")
        return stored


async def open_tab(browser: Browser) -> Tab:
    """A new context (own storage) and page that records console errors and lease requests."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    tab = Tab(page=page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(message.text)

    def on_request(request: Request) -> None:
        if request.url.endswith("/get_tracking_number") and request.method == "POST":
            tab.asked.append(request.post_data_json or {})

    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.errors.append(f"uncaught: {error}"))
    page.on("request", on_request)
    return tab
