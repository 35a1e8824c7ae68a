"""Web-To-Call in Debian's Chromium: click to connected, and the CPU one emulated call costs.

The whole service (API, voice webhook, the mounted emulator with its SIP/WebSocket gateway
and aiortc media) runs in this process under uvicorn on 127.0.0.1, on a fresh SQLite file;
Chromium (fake microphone, loopback ICE) opens the demo page, a fresh browser context per
call: a new visit, new credentials, and the widget, JsSIP and its parse paid every time.
The demo's business number answers at once (answer_after 0), so the figures are the stack's
and not a ringing phone's.

Two parts per run:

- latency: `--calls` calls, one after another, at most one click per `--interval` seconds
  (the Cloudonix REST budget: see its help). Each: open /demo, click "Call from your
  browser", wait (an evaluate awaiting the page's own `calltrack:call` event, no polling)
  for `connected`, hang up, wait for `ended` and for the emulator to close the call. An init
  script timestamps (performance.now()) the click, every `calltrack:call` state, each SIP
  message over the WebSocket, the peer connection's ICE gathering and connection states and
  getUserMedia; resource timing gives the widget, JsSIP and POST /web_to_call. The service's
  side (credentials, the emulator's webhooks and session updates, aiortc's answer) is timed
  by wrappers installed in this process.
- cpu: `--cpu-calls` calls on one page each: `--hold` seconds idle on the page (the
  baseline), then a call held `--hold` seconds once media is connected, then hang up. This
  process's CPU time (time.process_time: the service, its emulator and aiortc's threads, and
  the Playwright client, which is silent while holding) and Chromium's (utime+stime from
  /proc of every browser process) over each window.

Each repetition runs in a fresh process (a fresh service, emulator and Chromium; the first
call of each is the cold one). By default the whole bench runs in a network namespace of its
own with only `lo` up (as the browser tests do) when the machine allows it.

python -m bench.webcall_bench [--calls 20] [--cpu-calls 5] [--hold 5] [--repeat 3]
        [--interval 3.5] [--speed 100] [--netns auto|on|off] [--nagle]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import math
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.async_api import Browser, Page, Response, async_playwright
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.common import keep_result, log, median, wait_calm

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CALLTRACK_CHROMIUM", "/usr/bin/chromium")
BUSINESS = "+12125550100"  # the demo pool's destination
VISIT = "/demo?utm_source=bench&utm_medium=web&utm_campaign=webcall"
NETNS_FLAG = "CALLTRACK_BENCH_NETNS"
CHILD_MARK = "WEBCALLJSON "
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
CONNECT_MS = 20_000  # longest a call may take to connect (the widget's own REGISTER bound)
WAIT_S = 15.0  # longest any other wait may take

# Timestamps of everything the call does in the page, on performance.now()'s clock.
MARKS = """
(() => {
  const now = () => performance.now();
  const m = window.__bench = {click: null, events: [], sip: [], ws: [], pc: [], gum: [], js: []};
  window.__pcs = [];
  document.addEventListener('click', (e) => {
    const t = e.target;
    if (m.click === null && t && t.closest && t.closest('.ct-webcall-call')) m.click = now();
  }, true);
  // A script's load event fires once it has run: the widget's, and JsSIP's.
  document.addEventListener('load', (e) => {
    const t = e.target;
    if (t && t.tagName === 'SCRIPT') m.js.push({src: t.src, t: now()});
  }, true);
  document.addEventListener('calltrack:call',
    (e) => m.events.push({state: e.detail && e.detail.state, t: now()}));
  const label = (data) => {
    if (typeof data !== 'string') return 'binary';
    const first = data.split('\\r\\n', 1)[0];
    const cseq = /\\r\\nCSeq:\\s*\\d+\\s+([A-Z]+)/i.exec(data);
    if (first.startsWith('SIP/2.0 ')) return first.split(' ')[1] + ' ' + (cseq ? cseq[1] : '?');
    return first.split(' ')[0];
  };
  const NativeWS = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new NativeWS(...args);
    m.ws.push({what: 'new', t: now()});
    ws.addEventListener('open', () => m.ws.push({what: 'open', t: now()}));
    ws.addEventListener('message', (e) => m.sip.push({dir: 'in', what: label(e.data), t: now()}));
    const send = ws.send.bind(ws);
    ws.send = (data) => {
      m.sip.push({dir: 'out', what: label(data), t: now()});
      return send(data);
    };
    return ws;
  };
  window.WebSocket.prototype = NativeWS.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  const NativePC = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new NativePC(...args);
    window.__pcs.push(pc);
    m.pc.push({what: 'new', t: now()});
    pc.addEventListener('icegatheringstatechange',
      () => m.pc.push({what: 'gathering-' + pc.iceGatheringState, t: now()}));
    pc.addEventListener('iceconnectionstatechange',
      () => m.pc.push({what: 'ice-' + pc.iceConnectionState, t: now()}));
    pc.addEventListener('icecandidate',
      (e) => m.pc.push({what: e.candidate ? 'candidate' : 'candidates-end', t: now()}));
    pc.addEventListener('connectionstatechange',
      () => m.pc.push({what: 'pc-' + pc.connectionState, t: now()}));
    return pc;
  };
  window.RTCPeerConnection.prototype = NativePC.prototype;
  const media = navigator.mediaDevices;
  if (media && media.getUserMedia) {
    const ask = media.getUserMedia.bind(media);
    media.getUserMedia = (c) => {
      m.gum.push({what: 'ask', t: now()});
      return ask(c).then((s) => { m.gum.push({what: 'got', t: now()}); return s; });
    };
  }
})();
"""
# Resolves with the call's state once it is one of `wanted` (or 'timeout:<state>').
UNTIL = """([wanted, ms]) => new Promise((resolve) => {
  const state = CallTrack.callState();
  if (wanted.includes(state)) { resolve(state); return; }
  const on = (e) => {
    if (!wanted.includes(e.detail.state)) return;
    clearTimeout(timer);
    document.removeEventListener('calltrack:call', on);
    resolve(e.detail.state);
  };
  const timer = setTimeout(() => {
    document.removeEventListener('calltrack:call', on);
    resolve('timeout:' + CallTrack.callState());
  }, ms);
  // A script's load event fires once it has run: the widget's, and JsSIP's.
  document.addEventListener('load', (e) => {
    const t = e.target;
    if (t && t.tagName === 'SCRIPT') m.js.push({src: t.src, t: now()});
  }, true);
  document.addEventListener('calltrack:call', on);
})"""
# Resolves true once a peer connection is connected (ICE and DTLS done), false after `ms`.
MEDIA_UP = """(ms) => new Promise((resolve) => {
  const up = () => window.__pcs.some((pc) => pc.connectionState === 'connected');
  if (up()) { resolve(true); return; }
  const started = performance.now();
  const tick = () => {
    if (up()) resolve(true);
    else if (performance.now() - started > ms) resolve(false);
    else setTimeout(tick, 10);
  };
  tick();
})"""
COLLECT = """() => ({
  ...window.__bench,
  resources: performance.getEntriesByType('resource').map((e) => ({
    name: e.name, start: e.startTime, end: e.responseEnd, encoded: e.encodedBodySize,
    decoded: e.decodedBodySize}))
})"""


# --- the service's side, timed in this process ----------------------------------------------

SPANS: list[tuple[str, float, float]] = []  # (what, perf_counter start, end)
_CREATING: contextvars.ContextVar[bool] = contextvars.ContextVar("creating", default=False)


def _wrap(owner: Any, name: str, label: Callable[..., str]) -> None:
    """Time every await of owner.name into SPANS, labelled by `label(*args)`."""
    original: Callable[..., Awaitable[Any]] = getattr(owner, name)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            SPANS.append((label(*args, **kwargs), start, time.perf_counter()))

    setattr(owner, name, timed)


def _update_label(*args: Any, **_kwargs: Any) -> str:
    # ServiceClient.post_json(self, call, url, payload, what)
    payload = args[3]
    event = payload[0] if isinstance(payload, list) and payload else payload
    action = event.get("action") if isinstance(event, dict) else None
    return f"update:{action}" if action else f"post:{args[4]}"


def instrument() -> None:
    """Install the timing wrappers (once per process)."""
    from app.emulator import hooks, media, sip_gateway
    from app.providers.voice import cloudonix, pacing
    from app.providers.voice.base import Subscriber
    from app.services import web_to_call

    _wrap(web_to_call, "issue", lambda *a, **k: "issue")
    # The pacer's waits, told apart: the visitor's own subscriber, or anything else (the
    # keeper's deletions, which share Cloudonix's REST budget).
    _wrap(pacing.Pacer, "acquire", lambda *a, **k: "pacer:create" if _CREATING.get() else "pacer")
    _wrap(cloudonix.CloudonixProvider, "create_subscriber", lambda *a, **k: "create_subscriber")
    create = cloudonix.CloudonixProvider.create_subscriber

    async def creating(self: cloudonix.CloudonixProvider, subscriber: Subscriber) -> None:
        token = _CREATING.set(True)
        try:
            await create(self, subscriber)
        finally:
            _CREATING.reset(token)

    cloudonix.CloudonixProvider.create_subscriber = creating  # type: ignore[method-assign]
    _wrap(hooks.ServiceClient, "fetch_cxml", lambda *a, **k: "cxml")
    _wrap(hooks.ServiceClient, "post_json", _update_label)
    _wrap(media.MediaPeer, "answer", lambda *a, **k: "aiortc_answer")
    _wrap(sip_gateway.SipLeg, "answer", lambda *a, **k: "sip_200")
    start = sip_gateway.SipGateway._start

    def started(self: sip_gateway.SipGateway, leg: sip_gateway.SipLeg) -> None:
        now = time.perf_counter()
        SPANS.append(("invite", now, now))
        start(self, leg)

    sip_gateway.SipGateway._start = started  # type: ignore[method-assign]


def timed_app(app: ASGIApp) -> ASGIApp:
    """The app, its HTTP requests timed into SPANS as `http <path>` (to the last body byte)."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        start = time.perf_counter()

        async def sent(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                SPANS.append((f"http {scope['path']}", start, time.perf_counter()))

        await app(scope, receive, sent)

    return asgi


def server_side(spans: Sequence[tuple[str, float, float]]) -> dict[str, float]:
    """One call's service-side milliseconds, up to the 200 OK to the INVITE."""

    def ms(a: float, b: float) -> float:
        return round((b - a) * 1000, 2)

    out: dict[str, float] = {}
    first = {label: (s, e) for label, s, e in reversed(spans)}
    for label in ("issue", "create_subscriber", "aiortc_answer"):
        if label in first:
            out[label] = ms(*first[label])
    if "issue" in out and "create_subscriber" in out:
        # Its own database work (and waits for the write lock and the thread hops).
        out["issue_db"] = round(out["issue"] - out["create_subscriber"], 2)
    out["pacer_wait"] = round(
        sum((e - s) * 1000 for label, s, e in spans if label == "pacer:create"), 2
    )
    served = [(s, e) for label, s, e in spans if label == "http /web_to_call"]
    if served:
        out["web_to_call_handled"] = ms(*served[0])
    if "invite" in first and "sip_200" in first:
        invite, answered = first["invite"][0], first["sip_200"][0]
        out["invite_to_200"] = ms(invite, answered)
        before = [(lb, s, e) for lb, s, e in spans if invite <= s and e <= answered]
        out["cxml"] = round(sum((e - s) * 1000 for lb, s, e in before if lb == "cxml"), 2)
        updates = [(s, e) for lb, s, e in before if lb.startswith("update:")]
        out["updates_before_200"] = len(updates)
        out["updates_ms"] = round(sum((e - s) * 1000 for s, e in updates), 2)
        # The same requests as the service handled them (its app, not the HTTP round trip).
        handled = [(lb, s, e) for lb, s, e in before if lb.startswith("http /webhooks/")]
        out["updates_handled_ms"] = round(
            sum((e - s) * 1000 for lb, s, e in handled if lb.endswith("/session-update")), 2
        )
        out["voice_handled_ms"] = round(
            sum((e - s) * 1000 for lb, s, e in handled if not lb.endswith("/session-update")), 2
        )
        out["sip_200_send"] = ms(*first["sip_200"])
    return out


# --- the page's side ------------------------------------------------------------------------


def _first(items: Sequence[dict[str, Any]], key: str, value: str, nth: int = 1) -> float | None:
    found = [i["t"] for i in items if i.get(key) == value]
    return float(found[nth - 1]) if len(found) >= nth else None


def page_side(marks: dict[str, Any]) -> dict[str, float]:
    """One call's milliseconds from the click, and the phases between, from the page's marks."""
    events, sip, ws, pc, gum = (marks[k] for k in ("events", "sip", "ws", "pc", "gum"))
    ran = {("jssip" if "jssip" in j["src"] else "widget"): j["t"] for j in marks["js"]}
    click = marks["click"] if marks["click"] is not None else _first(events, "state", "connecting")
    assert click is not None, "no click recorded"

    def resource(part: str, edge: str) -> float | None:
        found = [r[edge] for r in marks["resources"] if part in r["name"]]
        return float(found[-1]) if found else None

    def sip_at(direction: str, what: str, nth: int = 1) -> float | None:
        found = [m["t"] for m in sip if m["dir"] == direction and m["what"] == what]
        return float(found[nth - 1]) if len(found) >= nth else None

    points: dict[str, float | None] = {
        "ringing": _first(events, "state", "ringing"),
        "connected": _first(events, "state", "connected"),
        "widget_loaded": resource("/webcall.js", "end"),
        "widget_ran": ran.get("widget"),
        "microphone": _first(gum, "what", "got"),
        "credentials_start": resource("/web_to_call", "start"),
        "credentials_end": resource("/web_to_call", "end"),
        "jssip_start": resource("/jssip.min.js", "start"),
        "jssip_end": resource("/jssip.min.js", "end"),
        "jssip_ran": ran.get("jssip"),
        "ws_new": _first(ws, "what", "new"),
        "ws_open": _first(ws, "what", "open"),
        "register_1": sip_at("out", "REGISTER"),
        "register_401": sip_at("in", "401 REGISTER"),
        "register_2": sip_at("out", "REGISTER", 2),
        "register_200": sip_at("in", "200 REGISTER"),
        "pc_new": _first(pc, "what", "new"),
        "gathering_start": _first(pc, "what", "gathering-gathering"),
        "first_candidate": _first(pc, "what", "candidate"),
        "gathered": _first(pc, "what", "gathering-complete"),
        "invite_1": sip_at("out", "INVITE"),
        "invite_407": sip_at("in", "407 INVITE"),
        "invite_2": sip_at("out", "INVITE", 2),
        "invite_100": sip_at("in", "100 INVITE"),
        "invite_180": sip_at("in", "180 INVITE"),
        "invite_200": sip_at("in", "200 INVITE"),
        "media_up": _first(pc, "what", "pc-connected"),
    }
    at = {k: round(v - click, 2) for k, v in points.items() if v is not None}

    def span(a: str, b: str) -> float | None:
        return round(at[b] - at[a], 2) if a in at and b in at else None

    phases = {
        # The headline: the widget's own states.
        "click_to_ringing": at.get("ringing"),
        "ringing_to_connected": span("ringing", "connected"),
        "click_to_connected": at.get("connected"),
        # Where that time goes, in order; credentials and JsSIP load in parallel.
        "widget_js": at.get("widget_loaded"),
        "widget_run": span("widget_loaded", "widget_ran"),
        "microphone": span("widget_ran", "microphone"),
        "credentials_fetch": span("credentials_start", "credentials_end"),
        "jssip_fetch": span("jssip_start", "jssip_end"),
        "jssip_run": span("jssip_end", "jssip_ran"),
        "to_websocket": span("microphone", "ws_new"),
        "ws_open": span("ws_new", "ws_open"),
        "register_rtt_1": span("register_1", "register_401"),
        "register_rtt_2": span("register_2", "register_200"),
        "register_total": span("ws_open", "register_200"),
        "offer_and_gathering": span("register_200", "invite_1"),
        "gathering": span("pc_new", "gathered"),
        # JsSIP sends the INVITE once gathering completes (no trickle ICE); the first
        # candidate comes much earlier.
        "to_gathering_start": span("pc_new", "gathering_start"),
        "to_first_candidate": span("pc_new", "first_candidate"),
        "first_candidate_to_complete": span("first_candidate", "gathered"),
        "invite_407_rtt": span("invite_1", "invite_407"),
        "invite_auth_to_180": span("invite_2", "invite_180"),
        "invite_auth_to_100": span("invite_2", "invite_100"),
        "ringing_180_to_200": span("invite_180", "invite_200"),
        "answer_to_connected": span("invite_200", "connected"),
        "connected_to_media": span("connected", "media_up"),
    }
    return {k: v for k, v in phases.items() if v is not None}


# --- CPU ------------------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def descendant_ticks() -> dict[str, int]:
    """CPU ticks (own and reaped children's, user and system) of this process's descendants:
    `chromium` (the browser and its helpers) and `driver` (Playwright's node)."""
    me = os.getpid()
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        info[pid] = (comm, sum(int(x) for x in fields[11:15]))
    totals = {"chromium": 0, "driver": 0}
    todo = list(children.get(me, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        comm, ticks = info[pid]
        totals["driver" if comm == "node" else "chromium"] += ticks
    return totals


class Meter:
    """CPU seconds of this process and of Chromium, and wall seconds, since start()."""

    def start(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        self.ticks = descendant_ticks()

    def read(self) -> dict[str, float]:
        ticks = descendant_ticks()
        return {
            "wall_s": round(time.perf_counter() - self.wall, 3),
            "service_cpu_s": round(time.process_time() - self.cpu, 3),
            "chromium_cpu_s": round((ticks["chromium"] - self.ticks["chromium"]) / TICK, 3),
            "driver_cpu_s": round((ticks["driver"] - self.ticks["driver"]) / TICK, 3),
        }


# --- one run --------------------------------------------------------------------------------


class Service:
    """The app on a 127.0.0.1 port under uvicorn, in this process."""

    def __init__(self, database_url: str, speed: float, *, nagle: bool = False) -> None:
        from app.main import create_app
        from app.settings import Settings

        # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted connections only when the
        # listening socket says TCP (as the one `calltrack serve` has uvicorn make). With proto
        # 0 (socket.socket(AF_INET, SOCK_STREAM), as tests/e2e/live.py binds) Nagle and the
        # client's delayed ACK add ~40 ms to every request on a kept-alive connection.
        proto = 0 if nagle else socket.IPPROTO_TCP
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
        self.sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.admin = secrets.token_urlsafe(24)
        settings = Settings.model_validate(
            {
                "database_url": database_url,
                "admin_token": self.admin,
                # Every visit comes from 127.0.0.1: the per-IP limit would throttle the bench.
                "public_rate_limit": "off",
                "emulator_url": f"{self.base}/emulator",
                "emulator_speed": speed,
                "emulator_api_key": "XI" + secrets.token_hex(16),
            }
        )
        self.app = create_app(settings)
        # As `calltrack serve` runs it (httptools), WebSockets on for the SIP socket.
        config = uvicorn.Config(
            timed_app(self.app),
            lifespan="on",
            log_config=None,
            access_log=False,
            ws="websockets-sansio",
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None
        self.stopped_in = 0.0

    async def __aenter__(self) -> Service:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        async with asyncio.timeout(WAIT_S):
            while not self.server.started and not self.task.done():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        if self.task.done():
            self.task.result()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        began = time.monotonic()
        if self.task is not None:
            try:
                # Bounded: the lifespan waits for the keeper's round, whose deletions queue
                # behind the REST pacer (10 per 10 s) after many calls.
                await asyncio.wait_for(self.task, 90)
            except TimeoutError:
                log("the service did not stop within 90 s: cancelled")
        self.stopped_in = round(time.monotonic() - began, 1)
        self.sock.close()


class Visit:
    """The demo page in a fresh context: a new visit."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.session: str | None = None

    async def state(self, wanted: Sequence[str], ms: int) -> str:
        """The call's state once it is one of `wanted`, else 'timeout:<state>' after `ms`."""
        async with asyncio.timeout(ms / 1000 + WAIT_S):
            return str(await self.page.evaluate(UNTIL, [list(wanted), ms]))


async def open_visit(browser: Browser, base: str) -> Visit:
    """Open the demo as a new visitor; ready to click once the visit is known."""
    context = await browser.new_context(permissions=["microphone"])
    page = await context.new_page()
    visit = Visit(page)
    page.on("console", lambda m: visit.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: visit.errors.append(f"uncaught: {e}"))
    await page.add_init_script(MARKS)
    await page.goto(base + VISIT)
    await page.wait_for_selector("#p-webcall .ct-webcall-call", timeout=WAIT_S * 1000)
    for _ in range(int(WAIT_S / 0.05)):
        visit.session = await page.evaluate("window.CallTrack && CallTrack.sessionId()")
        if visit.session:
            break
        await asyncio.sleep(0.05)
    assert visit.session, "the demo page never learned its visit"
    return visit


async def emulator_call(ops: httpx.AsyncClient, session: str) -> dict[str, Any]:
    """The emulator's subscriber call of this visit, once it has ended with its media."""
    call: dict[str, Any] = {}
    for _ in range(int(WAIT_S / 0.1)):
        listed = (await ops.get("/emulator/calls")).json()
        mine = [c for c in listed if c.get("to") == f"web-{session}"]
        if mine and mine[-1]["state"] == "ended" and mine[-1]["media"] is not None:
            return dict(mine[-1])
        call = mine[-1] if mine else {}
        await asyncio.sleep(0.1)
    raise AssertionError(f"the emulator never ended the call: {call}")


async def one_call(
    browser: Browser, base: str, ops: httpx.AsyncClient, *, hold: float | None
) -> dict[str, Any]:
    """One visit and call. With `hold`: the CPU windows (idle on the page, then connected)."""
    visit = await open_visit(browser, base)
    page = visit.page
    handed: list[int] = []

    async def on_response(response: Response) -> None:
        if response.url.endswith("/web_to_call"):
            handed.append(response.status)

    page.on("response", on_response)
    meter = Meter()
    out: dict[str, Any] = {}
    try:
        if hold is not None:
            await asyncio.sleep(1.0)  # the lease request and the page's own work settle
            meter.start()
            await asyncio.sleep(hold)
            out["idle"] = meter.read()
            meter.start()  # the whole call: click to the emulator's end, and teardown
        SPANS.clear()
        await page.click("#p-webcall .ct-webcall-call")
        state = await visit.state(["connected", "failed", "ended"], CONNECT_MS)
        out["state"] = state
        if state != "connected":
            message = await page.evaluate(
                "document.querySelector('.ct-webcall-status')?.textContent"
            )
            out["message"] = message
            out["errors"] = visit.errors
            return out
        out["media"] = bool(await page.evaluate(MEDIA_UP, CONNECT_MS))
        out["server"] = server_side(list(SPANS))
        if hold is not None:
            connected = Meter()
            connected.start()
            await asyncio.sleep(hold)
            out["connected"] = connected.read()
        out["page"] = page_side(await page.evaluate(COLLECT))
        await page.evaluate("CallTrack.hangup()")
        ended = await visit.state(["ended", "failed"], int(WAIT_S * 1000))
        assert ended == "ended", ended
        assert visit.session is not None
        call = await emulator_call(ops, visit.session)
        out["frames"] = call["media"]
        out["disposition"] = call["disposition"]
        if hold is not None:
            out["whole"] = meter.read()
        out["credentials_status"] = handed
        out["errors"] = visit.errors
        return out
    finally:
        await page.context.close()


async def run(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    """One repetition: a fresh service and Chromium, the latency calls, then the CPU calls."""
    async with Service(database_url, args.speed, nagle=args.nagle) as service:
        base = service.base
        headers = {"Authorization": f"Bearer {service.admin}"}
        async with (
            httpx.AsyncClient(base_url=base, headers=headers, timeout=WAIT_S) as ops,
            async_playwright() as playwright,
        ):
            put = await ops.put(
                f"/emulator/behaviours/{BUSINESS}", json={"answer_after": 0, "talk": 86400}
            )
            assert put.status_code == 200, put.text
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                calls: list[dict[str, Any]] = []
                for index in range(args.calls):
                    began = time.monotonic()
                    done = await one_call(browser, base, ops, hold=None)
                    calls.append(done)
                    took = done.get("page", {}).get("click_to_connected")
                    log(f"call {index + 1}/{args.calls}: {done['state']}, {took} ms")
                    # At most one click per `interval`: see --interval.
                    await asyncio.sleep(max(args.gap, args.interval - (time.monotonic() - began)))
                cpu: list[dict[str, Any]] = []
                for index in range(args.cpu_calls):
                    done = await one_call(browser, base, ops, hold=args.hold)
                    cpu.append(done)
                    log(
                        f"cpu call {index + 1}/{args.cpu_calls}: {done['state']}, "
                        f"idle {done.get('idle')}, connected {done.get('connected')}"
                    )
                    await asyncio.sleep(args.gap)
                version = browser.version
            finally:
                await browser.close()
    log(f"service stopped in {service.stopped_in} s")
    return {"chromium": version, "calls": calls, "cpu": cpu, "shutdown_s": service.stopped_in}


def child(args: argparse.Namespace) -> None:
    """One repetition in this process; its record on stdout after CHILD_MARK."""
    from app.db import migrate

    instrument()
    workdir = Path(tempfile.mkdtemp(prefix="webcall-bench-"))
    try:
        url = f"sqlite+aiosqlite:///{workdir}/webcall.db"
        migrate.upgrade(url)
        record = asyncio.run(run(args, url))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(CHILD_MARK + json.dumps(record), flush=True)


# --- summaries ------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: with 20 values p90 is the 18th, p99 the 20th (the max)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def spread(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p90, p99, min and max (nearest rank)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 1),
        "p90": round(percentile(values, 90), 1),
        "p99": round(percentile(values, 99), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def summarise(record: dict[str, Any]) -> dict[str, Any]:
    """One repetition's figures: latency spreads, phase and server medians, CPU per call."""
    ok = [c for c in record["calls"] if c["state"] == "connected"]
    warm = [c for c in ok if c is not record["calls"][0]]
    headline = ("click_to_connected", "click_to_ringing", "ringing_to_connected")
    out: dict[str, Any] = {
        "failed": len(record["calls"]) - len(ok),
        # Calls whose credentials waited for the Cloudonix REST pacer (over 5 ms).
        "pacer_waited": sum(1 for c in ok if c["server"].get("pacer_wait", 0) > 5),
        "all": {k: spread([c["page"][k] for c in ok if k in c["page"]]) for k in headline},
        "warm": {k: spread([c["page"][k] for c in warm if k in c["page"]]) for k in headline},
    }
    first = record["calls"][0]
    if first["state"] == "connected":
        out["cold"] = {"page": first["page"], "server": first["server"]}
    phases = sorted({k for c in warm for k in c["page"]})
    out["warm_phases_p50"] = {
        k: round(median([c["page"][k] for c in warm if k in c["page"]]), 1) for k in phases
    }
    server = sorted({k for c in warm for k in c["server"]})
    out["warm_server_p50"] = {
        k: round(median([c["server"][k] for c in warm if k in c["server"]]), 1) for k in server
    }
    # Only calls whose audio flowed: media connected, and frames from the browser counted.
    cpu = [
        c
        for c in record["cpu"]
        if c["state"] == "connected"
        and c.get("media")
        and "whole" in c
        and c["frames"]["frames_received"] > 0
    ]
    if cpu:
        rows = []
        for c in cpu:
            idle, conn, whole = c["idle"], c["connected"], c["whole"]
            row: dict[str, float] = {}
            for who in ("service", "chromium"):
                rate = idle[f"{who}_cpu_s"] / idle["wall_s"]
                row[f"{who}_idle_pct"] = 100 * rate
                row[f"{who}_connected_pct"] = 100 * (conn[f"{who}_cpu_s"] / conn["wall_s"] - rate)
                row[f"{who}_call_cpu_s"] = whole[f"{who}_cpu_s"] - rate * whole["wall_s"]
            row["call_wall_s"] = whole["wall_s"]
            row["frames_received"] = c["frames"]["frames_received"]
            rows.append(row)
        out["cpu_p50"] = {k: round(median([r[k] for r in rows]), 3) for k in rows[0]}
        out["cpu_n"] = len(rows)
    out["cpu_failed"] = len(record["cpu"]) - len(cpu)
    return out


def across(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians across repetitions of every number in the summaries (same shape)."""

    def merge(items: Sequence[Any]) -> Any:
        if all(isinstance(i, dict) for i in items):
            keys = sorted({k for i in items for k in i})
            return {k: merge([i[k] for i in items if k in i]) for k in keys}
        if all(isinstance(i, int | float) for i in items):
            return round(median([float(i) for i in items]), 3)
        return items

    return dict(merge(runs))


# --- main -----------------------------------------------------------------------------------


def netns_wanted(mode: str) -> bool:
    """Whether to re-run this bench inside a network namespace with only `lo` up."""
    if mode == "off" or os.environ.get(NETNS_FLAG) == "1":
        return False
    possible = os.geteuid() == 0 and bool(shutil.which("unshare")) and bool(shutil.which("ip"))
    if possible:
        probe = subprocess.run(
            ["unshare", "--net", "sh", "-c", "ip link set lo up"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        possible = probe.returncode == 0
    if mode == "on" and not possible:
        raise SystemExit("no network namespace can be made here (root, unshare and ip needed)")
    return possible


def main() -> None:
    """Parse arguments; run the repetitions (each a child process), keep the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--cpu-calls", type=int, default=5)
    parser.add_argument("--hold", type=float, default=5.0, help="seconds idle, and connected")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--speed", type=float, default=100.0, help="emulator virtual s per s")
    parser.add_argument("--gap", type=float, default=0.5, help="pause between calls, seconds")
    parser.add_argument(
        "--interval",
        type=float,
        default=3.5,
        help="least seconds from one latency call's start to the next: each call costs two "
        "Cloudonix REST requests (create; delete, batched by the keeper every 15 s) out of 10 "
        "per 10 s, which back-to-back calls exceed (0: back to back)",
    )
    parser.add_argument("--netns", choices=["auto", "on", "off"], default="auto")
    parser.add_argument(
        "--nagle",
        action="store_true",
        help="bind the service's socket as tests/e2e/live.py does (no TCP_NODELAY)",
    )
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--calm-wait", type=float, default=60.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.calls <= 200 or not 0 <= args.cpu_calls <= 50 or not 1 <= args.repeat <= 10:
        parser.error("--calls 1..200, --cpu-calls 0..50, --repeat 1..10")
    if args.child:
        child(args)
        return
    if netns_wanted(args.netns):
        inner = [sys.executable, "-m", "bench.webcall_bench", *sys.argv[1:]]
        line = "ip link set lo up && exec " + " ".join(shlex.quote(a) for a in inner)
        env = {**os.environ, NETNS_FLAG: "1"}
        ran = subprocess.run(["unshare", "--net", "sh", "-c", line], env=env, cwd=ROOT, check=False)
        raise SystemExit(ran.returncode)
    per_run = 120 + args.calls * 30 + args.cpu_calls * (2 * args.hold + 40)
    runs: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    calm: list[dict[str, Any]] = []
    for rep in range(args.repeat):
        calm.append(wait_calm(args.max_load, args.calm_wait, pause=1.0))
        log(f"repetition {rep + 1}/{args.repeat} (machine: {calm[-1]})")
        argv = [a for a in sys.argv[1:] if a != "--child"]
        done = subprocess.run(
            [sys.executable, "-m", "bench.webcall_bench", *argv, "--child"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            timeout=per_run,
            check=True,
        )
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith(CHILD_MARK)]
        record = json.loads(lines[-1][len(CHILD_MARK) :])
        records.append(record)
        runs.append(summarise(record))
        log(f"repetition {rep + 1}: {json.dumps(runs[-1]['all']['click_to_connected'])}")
    keep_result(
        "webcall",
        {
            "chromium": records[0]["chromium"],
            "netns": os.environ.get(NETNS_FLAG) == "1",
            "speed": args.speed,
            "nagle": args.nagle,
            "interval_s": args.interval,
            "calls": args.calls,
            "cpu_calls": args.cpu_calls,
            "hold_s": args.hold,
            "repeat": args.repeat,
            "calm": calm,
            "median_of_runs": across(runs),
            "runs": runs,
            "raw": records,
        },
    )


if __name__ == "__main__":
    main()
