"""The SIP-over-WebSocket gateway, driven over a real socket on 127.0.0.1 like JsSIP drives it."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from app.emulator import sip
from app.emulator.sip import Request, Response
from app.emulator.sip_gateway import SipGateway, SipLeg, SipLegError
from tests.emulator.support import eventually

BOUND = 5.0  # seconds any wait may take
DOMAIN = "calltrack.emulator"
USER, PASSWORD = "wtc-4d1e0a9b", "Vq3-hP8s_Lr2mT6x"
OTHER, OTHER_PASSWORD = "wtc-77aa01cc", "Kd9-wN4z_Qe1yU5b"
DIALLED = f"sip:web-s1@{DOMAIN}"
OFFER = "v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
ANSWER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
SIP = [Subprotocol("sip")]


class Directory:
    """Two subscribers."""

    def password_of(self, username: str) -> str | None:
        """Their passwords."""
        return {USER: PASSWORD, OTHER: OTHER_PASSWORD}.get(username)


class Clock:
    """The gateway's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def md5(text: str) -> str:
    """Hex MD5, as digest wants it."""
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def authorization(
    challenge: str, method: str, uri: str, *, user: str = USER, password: str = PASSWORD
) -> str:
    """Answer a challenge the way JsSIP does (computed here, not by the code under test)."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce, nc, cnonce = params["realm"], params["nonce"], "00000001", "cte0okahj6v2"
    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (
        f'Digest algorithm=MD5, username="{user}", realm="{realm}", nonce="{nonce}", '
        f'uri="{uri}", response="{response}", qop=auth, cnonce="{cnonce}", nc={nc}'
    )


class Phone:
    """One JsSIP-shaped client on one socket."""

    def __init__(self, ws: ClientConnection, user: str = USER, password: str = PASSWORD) -> None:
        self.ws = ws
        self.user, self.password = user, password
        self.host = "i9qvl26hvgqt.invalid"
        self.contact = f"<sip:33dlk7pn@{self.host};transport=ws;ob>"
        self.from_tag = sip.new_tag()
        self.cseq = 8107
        self.branches = 0

    def via(self) -> str:
        """A Via with a new branch."""
        self.branches += 1
        return f"SIP/2.0/WSS {self.host};branch=z9hG4bK{5937914 + self.branches}"

    def text(self, method: str, uri: str, headers: list[str], body: str = "") -> str:
        """A request in JsSIP's order: the given headers, then Allow, Supported, User-Agent."""
        lines = [
            f"{method} {uri} SIP/2.0",
            *headers,
            "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY,SUBSCRIBE",
            "Supported: outbound",
            "User-Agent: JsSIP 3.13.8",
            f"Content-Length: {len(body.encode())}",
        ]
        return "\r\n".join(lines) + "\r\n\r\n" + body

    async def send(self, text: str) -> None:
        """Send one frame."""
        await self.ws.send(text)

    async def recv(self) -> Request | Response:
        """The next message (bounded wait)."""
        async with asyncio.timeout(BOUND):
            data = await self.ws.recv()
        return sip.parse(data)

    async def response(self) -> Response:
        """The next message, which must be a response."""
        got = await self.recv()
        assert isinstance(got, Response), got
        return got

    async def request(self) -> Request:
        """The next message, which must be a request."""
        got = await self.recv()
        assert isinstance(got, Request), got
        return got

    def register_text(self, expires: int = 600, auth: str | None = None) -> str:
        """A REGISTER as JsSIP writes it."""
        self.cseq += 1
        aor = f"<sip:{self.user}@{DOMAIN}>"
        contact = (
            f"<sip:33dlk7pn@{self.host};transport=ws>;+sip.ice;reg-id=1;"
            f'+sip.instance="<urn:uuid:533d186f-4866-44a6-ba9f-7300044afba8>";expires={expires}'
        )
        headers = [
            f"Via: {self.via()}",
            "Max-Forwards: 69",
            f"To: {aor}",
            f"From: {aor};tag={self.from_tag}",
            "Call-ID: 2ohgeqd25gf5v8t6vm0nft",
            f"CSeq: {self.cseq} REGISTER",
            *([f"Authorization: {auth}"] if auth else []),
            f"Expires: {expires}",
            f"Contact: {contact}",
        ]
        return self.text("REGISTER", f"sip:{DOMAIN}", headers)

    async def register(self, expires: int = 600) -> Response:
        """REGISTER, answer the 401, return the final response."""
        await self.send(self.register_text(expires))
        challenged = await self.response()
        assert challenged.status == 401
        value = challenged.headers.get("WWW-Authenticate") or ""
        auth = authorization(
            value, "REGISTER", f"sip:{DOMAIN}", user=self.user, password=self.password
        )
        await self.send(self.register_text(expires, auth))
        return await self.response()

    def invite_text(
        self, call_id: str, auth: str | None = None, *, extra: tuple[str, ...] = ()
    ) -> str:
        """An INVITE with an SDP offer and X- headers, as JsSIP writes it."""
        headers = [
            f"Via: {self.via()}",
            "Max-Forwards: 69",
            f"To: <{DIALLED}>",
            f"From: <sip:{self.user}@{DOMAIN}>;tag={self.from_tag}",
            f"Call-ID: {call_id}",
            f"CSeq: {self.cseq} INVITE",
            *([f"Proxy-Authorization: {auth}"] if auth else []),
            "X-Calltrack-Session: s1",
            "x-Visit-Ref: Abc",
            *extra,
            f"Contact: {self.contact}",
            "Content-Type: application/sdp",
            "Session-Expires: 90",
        ]
        return self.text("INVITE", DIALLED, headers, OFFER)

    def in_dialog(self, method: str, invite: Request, to_tag: str, cseq: int) -> str:
        """ACK, BYE or CANCEL for `invite` (CANCEL reuses its branch, the others get new ones)."""
        via = invite.vias[0] if method == "CANCEL" else self.via()
        to = f"<{DIALLED}>" + (f";tag={to_tag}" if to_tag else "")
        headers = [
            f"Via: {via}",
            "Max-Forwards: 69",
            f"To: {to}",
            f"From: <sip:{self.user}@{DOMAIN}>;tag={self.from_tag}",
            f"Call-ID: {invite.call_id}",
            f"CSeq: {cseq} {method}",
        ]
        return self.text(method, DIALLED, headers)

    async def call(self, call_id: str = "b0mittu0g92gg9bp9shm", **kwargs: Any) -> Request:
        """INVITE, 407, ACK, authenticated INVITE, 100 Trying: the INVITE the gateway took."""
        first = sip.parse(self.invite_text(call_id, **kwargs))
        assert isinstance(first, Request)
        await self.send(first.serialise())
        challenged = await self.response()
        assert challenged.status == 407
        await self.send(self.in_dialog("ACK", first, challenged.to_tag or "", self.cseq))
        self.cseq += 1
        auth = authorization(
            challenged.headers.get("Proxy-Authenticate") or "",
            "INVITE",
            DIALLED,
            user=self.user,
            password=self.password,
        )
        invite = sip.parse(self.invite_text(call_id, auth, **kwargs))
        assert isinstance(invite, Request)
        await self.send(invite.serialise())
        trying = await self.response()
        assert (trying.status, trying.to_tag, trying.call_id) == (100, None, call_id)
        return invite

    async def nothing_pending(self) -> None:
        """Nothing was sent to this phone: an OPTIONS is answered next."""
        headers = [
            f"Via: {self.via()}",
            "Max-Forwards: 69",
            f"To: <sip:{DOMAIN}>",
            f"From: <sip:{self.user}@{DOMAIN}>;tag={self.from_tag}",
            "Call-ID: ping",
            "CSeq: 1 OPTIONS",
        ]
        await self.send(self.text("OPTIONS", f"sip:{DOMAIN}", headers))
        got = await self.response()
        assert (got.status, got.call_id) == (200, "ping")


@asynccontextmanager
async def served(gateway: SipGateway) -> AsyncIterator[str]:
    """A tiny app with only the gateway, on a free 127.0.0.1 port; its ws:// URL."""
    app = Starlette(routes=[WebSocketRoute("/sip", gateway)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="off", log_config=None, ws="websockets-sansio", http="h11"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started)
        yield f"ws://127.0.0.1:{port}/sip"
    finally:
        await gateway.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, BOUND)
        sock.close()


@dataclass
class Env:
    """A served gateway and what its glue saw."""

    url: str
    gateway: SipGateway
    legs: asyncio.Queue[SipLeg]
    clock: Clock
    stack: AsyncExitStack

    async def phone(self, user: str = USER, password: str = PASSWORD) -> Phone:
        """A connected phone, closed after the test."""
        ws = await self.stack.enter_async_context(
            connect(self.url, subprotocols=SIP, open_timeout=BOUND, close_timeout=1)
        )
        assert ws.subprotocol == "sip"
        return Phone(ws, user, password)

    async def leg(self) -> SipLeg:
        """The next leg handed to on_invite."""
        async with asyncio.timeout(BOUND):
            return await self.legs.get()


Start = Callable[..., Awaitable[Env]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Serve gateways (options overridable); everything is closed after the test."""
    async with AsyncExitStack() as stack:

        async def go(**overrides: Any) -> Env:
            legs: asyncio.Queue[SipLeg] = asyncio.Queue()
            clock = Clock()

            async def on_invite(leg: SipLeg) -> None:
                # Like the glue: take the leg, live as long as the call.
                await legs.put(leg)
                await leg.ended.wait()

            values: dict[str, Any] = {"domain": DOMAIN, "on_invite": on_invite, "clock": clock}
            values.update(overrides)
            gateway = SipGateway(Directory(), **values)
            url = await stack.enter_async_context(served(gateway))
            return Env(url, gateway, legs, clock, stack)

        yield go


async def wait(event: asyncio.Event) -> None:
    """Wait (bounded) for the event."""
    async with asyncio.timeout(BOUND):
        await event.wait()


# --- the socket -----------------------------------------------------------------------------


@pytest.mark.parametrize("offered", [None, ["chat"]])
async def test_sockets_without_the_sip_subprotocol_are_refused(
    start: Start, offered: list[str] | None
) -> None:
    env = await start()
    subprotocols = [Subprotocol(p) for p in offered] if offered else None
    with pytest.raises(InvalidStatus) as refused:
        async with connect(env.url, subprotocols=subprotocols, open_timeout=BOUND):
            pass
    assert refused.value.response.status_code == 403


async def test_keepalives_are_skipped_and_options_answered(start: Start) -> None:
    env = await start()
    phone = await env.phone()
    await phone.send("\r\n\r\n")
    await phone.send("\r\n")
    await phone.nothing_pending()


async def test_oversized_messages_close_the_socket(start: Start) -> None:
    env = await start(max_message=2048)
    phone = await env.phone()
    await phone.send("OPTIONS sip:x SIP/2.0\r\nSubject: " + "a" * 4096 + "\r\n\r\n")
    with pytest.raises(ConnectionClosed) as closed:
        await phone.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_garbage_is_dropped_and_bad_requests_get_400(start: Start) -> None:
    env = await start()
    phone = await env.phone()
    await phone.send("this is not SIP\r\n\r\n")
    bad_cseq = phone.text(
        "OPTIONS",
        f"sip:{DOMAIN}",
        [f"Via: {phone.via()}", "To: <sip:a@b>", "From: <sip:c@d>;tag=1", "Call-ID: x"],
    )
    await phone.send(bad_cseq)
    assert (await phone.response()).status == 400
    await phone.nothing_pending()


# --- REGISTER -------------------------------------------------------------------------------


async def test_register_is_challenged_then_echoes_the_contact_with_expires(start: Start) -> None:
    env = await start()
    phone = await env.phone()
    await phone.send(phone.register_text())
    challenged = await phone.response()
    assert challenged.status == 401
    assert challenged.to_tag
    value = challenged.headers.get("WWW-Authenticate") or ""
    assert f'realm="{DOMAIN}"' in value
    assert 'qop="auth"' in value
    assert "algorithm=MD5" in value
    assert env.gateway.registration(USER) is None

    registered = await phone.register(expires=3600)
    assert registered.status == 200
    contact = registered.headers.get("Contact") or ""
    sent = sip.parse_name_addr(phone.register_text().split("Contact: ")[1].split("\r\n")[0])
    echoed = sip.parse_name_addr(contact)
    assert echoed.uri == sent.uri
    assert echoed.params["+sip.instance"] == sent.params["+sip.instance"]
    assert echoed.params["expires"] == "600"  # capped at the gateway's maximum
    binding = env.gateway.registration(USER)
    assert binding is not None
    assert binding.expires_at == env.clock.now + 600

    unregistered = await phone.register(expires=0)
    assert unregistered.status == 200
    assert "Contact" not in unregistered.headers
    assert env.gateway.registration(USER) is None


async def test_a_binding_expires_and_goes_with_its_socket(start: Start) -> None:
    env = await start()
    phone = await env.phone()
    assert (await phone.register(expires=60)).status == 200
    env.clock.now += 61
    assert env.gateway.registration(USER) is None
    assert (await phone.register(expires=60)).status == 200
    await phone.ws.close()
    await eventually(lambda: env.gateway.registration(USER) is None)


@pytest.mark.parametrize(("user", "password"), [(USER, "wrong-password"), ("wtc-nobody", PASSWORD)])
async def test_wrong_password_or_unknown_subscriber_is_403(
    start: Start, user: str, password: str
) -> None:
    env = await start()
    phone = await env.phone(user, password)
    refused = await phone.register()
    assert refused.status == 403
    assert env.gateway.registration(user) is None


async def test_registering_someone_elses_address_is_403(start: Start) -> None:
    env = await start()
    phone = await env.phone(OTHER, OTHER_PASSWORD)
    phone.user = USER  # the To names USER, the credentials are OTHER's
    await phone.send(phone.register_text())
    challenged = await phone.response()
    auth = authorization(
        challenged.headers.get("WWW-Authenticate") or "",
        "REGISTER",
        f"sip:{DOMAIN}",
        user=OTHER,
        password=OTHER_PASSWORD,
    )
    await phone.send(phone.register_text(auth=auth))
    assert (await phone.response()).status == 403
    assert env.gateway.registration(USER) is None


async def test_repeated_failures_close_the_socket(start: Start) -> None:
    env = await start(max_auth_failures=2)
    phone = await env.phone(USER, "wrong-password")
    assert (await phone.register()).status == 403
    assert (await phone.register()).status == 403
    with pytest.raises(ConnectionClosed) as closed:
        await phone.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_stale_replayed_and_foreign_nonces_are_refused(start: Start) -> None:
    env = await start(nonce_ttl=30.0)
    phone = await env.phone()
    await phone.send(phone.register_text())
    challenge = (await phone.response()).headers.get("WWW-Authenticate") or ""
    auth = authorization(challenge, "REGISTER", f"sip:{DOMAIN}")
    await phone.send(phone.register_text(auth=auth))
    assert (await phone.response()).status == 200

    # The same nonce-count again: a replay, challenged anew.
    await phone.send(phone.register_text(auth=auth))
    replayed = await phone.response()
    assert replayed.status == 401
    assert "stale" not in (replayed.headers.get("WWW-Authenticate") or "")

    fresh = replayed.headers.get("WWW-Authenticate") or ""
    env.clock.now += 31
    await phone.send(phone.register_text(auth=authorization(fresh, "REGISTER", f"sip:{DOMAIN}")))
    stale = await phone.response()
    assert stale.status == 401
    assert (stale.headers.get("WWW-Authenticate") or "").endswith("stale=true")

    # A nonce this socket never issued proves nothing.
    foreign = 'Digest realm="calltrack.emulator", nonce="00112233445566778899aabbccddeeff"'
    await phone.send(phone.register_text(auth=authorization(foreign, "REGISTER", f"sip:{DOMAIN}")))
    assert (await phone.response()).status == 403


# --- INVITE ---------------------------------------------------------------------------------


async def test_invite_answered_acked_and_ended_by_the_caller(start: Start) -> None:
    env = await start()
    phone = await env.phone()
    invite = await phone.call()
    leg = await env.leg()
    assert leg.call_id == invite.call_id
    assert leg.username == USER
    assert (leg.dialled, leg.dialled_uri) == ("web-s1", DIALLED)
    assert leg.headers == {"X-Calltrack-Session": "s1", "x-Visit-Ref": "Abc"}
    assert leg.offer_sdp == OFFER
    assert not leg.confirmed.is_set()
    assert leg.ended_by is None

    await leg.ringing()
    ringing = await phone.response()
    assert (ringing.status, ringing.cseq) == (180, invite.cseq)
    assert ringing.to_tag == leg.local_tag
    assert ringing.headers.get("Contact")

    assert await leg.answer(ANSWER)
    ok = await phone.response()
    assert (ok.status, ok.to_tag, ok.content_type, ok.body) == (
        200,
        leg.local_tag,
        "application/sdp",
        ANSWER,
    )
    assert ok.headers.get_all("Via") == invite.headers.get_all("Via")
    assert sip.parse_name_addr(ok.headers.get("Contact") or "").uri == DIALLED
    with pytest.raises(SipLegError):
        await leg.answer(ANSWER)

    await phone.send(phone.in_dialog("ACK", invite, leg.local_tag, invite.cseq[0]))
    await wait(leg.confirmed)
    assert not leg.ended.is_set()

    await phone.send(phone.in_dialog("BYE", invite, leg.local_tag, invite.cseq[0] + 1))
    bye_ok = await phone.response()
    assert (bye_ok.status, bye_ok.cseq) == (200, (invite.cseq[0] + 1, "BYE"))
    await wait(leg.ended)
    assert leg.ended_by == "caller"
    await leg.hangup()  # too late: nothing is sent
    await phone.nothing_pending()


async def test_the_ack_of_the_407_is_ignored(start: Start) -> None:
    env = await start()
    phone = await env.phone()
    first = sip.parse(phone.invite_text("ack-407"))
    assert isinstance(first, Request)
    await phone.send(first.serialise())
    challenged = await phone.response()
    assert challenged.status == 407
    assert challenged.headers.get("Proxy-Authenticate")
    await phone.send(phone.in_dialog("ACK", first, challenged.to_tag or "", first.cseq[0]))
    await phone.nothing_pending()
    assert env.legs.empty()


async def test_hangup_sends_a_bye_with_from_and_to_swapped(start: Start) -> None:
    env = await start()
    phone = await env.phone()
    invite = await phone.call()
    leg = await env.leg()
    await leg.answer(ANSWER)
    assert (await phone.response()).status == 200
    await phone.send(phone.in_dialog("ACK", invite, leg.local_tag, invite.cseq[0]))
    await wait(leg.confirmed)

    hangup = asyncio.create_task(leg.hangup())
    bye = await phone.request()
    assert bye.method == "BYE"
    assert bye.uri == sip.parse_name_addr(phone.contact).uri
    assert bye.call_id == invite.call_id
    assert bye.headers.get("From") == f"<{DIALLED}>;tag={leg.local_tag}"
    assert bye.headers.get("To") == invite.headers.get("From")
    assert (bye.from_tag, bye.to_tag) == (leg.local_tag, phone.from_tag)
    assert bye.cseq == (1, "BYE")
    assert (bye.branch or "").startswith("z9hG4bK")
    assert bye.headers.get("Max-Forwards") == "70"
    await phone.send(sip.response_to(bye, 200).serialise())
    async with asyncio.timeout(BOUND):
        await hangup
    assert leg.ended.is_set()
    assert leg.ended_by == "callee"


async def test_cancel_before_the_answer_is_487(start: Start) -> None:
    env = await start()
    phone = await env.phone()
    invite = await phone.call()
    leg = await env.leg()
    await leg.ringing()
    assert (await phone.response()).status == 180

    await phone.send(phone.in_dialog("CANCEL", invite, "", invite.cseq[0]))
    cancelled = await phone.response()
    assert (cancelled.status, cancelled.cseq) == (200, (invite.cseq[0], "CANCEL"))
    terminated = await phone.response()
    assert (terminated.status, terminated.cseq) == (487, invite.cseq)
    assert terminated.to_tag == leg.local_tag
    await wait(leg.ended)
    assert leg.ended_by == "caller"
    assert await leg.answer(ANSWER) is False
    await phone.send(phone.in_dialog("ACK", invite, leg.local_tag, invite.cseq[0]))
    await phone.nothing_pending()


async def test_reject_sends_the_final_status(start: Start) -> None:
    env = await start()
    phone = await env.phone()
    invite = await phone.call()
    leg = await env.leg()
    await leg.reject(486, "Busy Here")
    busy = await phone.response()
    assert (busy.status, busy.reason, busy.cseq) == (486, "Busy Here", invite.cseq)
    assert leg.ended_by == "callee"
    with pytest.raises(ValueError, match="3xx-6xx"):
        await leg.reject(200)


async def test_closing_the_socket_is_the_caller_hanging_up(start: Start) -> None:
    env = await start()
    phone = await env.phone()
    await phone.call()
    leg = await env.leg()
    assert await leg.answer(ANSWER)
    await phone.ws.close()
    await wait(leg.ended)
    assert leg.ended_by == "caller"


@pytest.mark.parametrize(
    ("user", "password", "as_user"),
    [(USER, "wrong-password", USER), (OTHER, OTHER_PASSWORD, USER)],
)
async def test_invite_with_bad_credentials_or_someone_elses_from_is_403(
    start: Start, user: str, password: str, as_user: str
) -> None:
    env = await start()
    phone = await env.phone(user, password)
    phone.user = as_user
    first = sip.parse(phone.invite_text("bad"))
    assert isinstance(first, Request)
    await phone.send(first.serialise())
    challenge = (await phone.response()).headers.get("Proxy-Authenticate") or ""
    phone.cseq += 1
    auth = authorization(challenge, "INVITE", DIALLED, user=user, password=password)
    await phone.send(phone.invite_text("bad", auth))
    assert (await phone.response()).status == 403
    assert env.legs.empty()


async def test_dialogs_per_socket_are_bounded(start: Start) -> None:
    env = await start(max_dialogs=1)
    phone = await env.phone()
    await phone.call("first")
    await env.leg()
    phone.cseq += 1
    first = sip.parse(phone.invite_text("second"))
    assert isinstance(first, Request)
    await phone.send(first.serialise())
    challenge = (await phone.response()).headers.get("Proxy-Authenticate") or ""
    phone.cseq += 1
    await phone.send(phone.invite_text("second", authorization(challenge, "INVITE", DIALLED)))
    assert (await phone.response()).status == 486


async def test_in_dialog_requests(start: Start) -> None:
    env = await start()
    phone = await env.phone()
    invite = await phone.call()
    leg = await env.leg()
    await leg.answer(ANSWER)
    assert (await phone.response()).status == 200
    # JsSIP refreshes its session timer with a body-less UPDATE; DTMF may come as INFO.
    for number, method in enumerate(("UPDATE", "INFO"), start=invite.cseq[0] + 1):
        await phone.send(phone.in_dialog(method, invite, leg.local_tag, number))
        assert (await phone.response()).status == 200
    await phone.send(phone.in_dialog("BYE", invite, "not-our-tag", invite.cseq[0] + 3))
    assert (await phone.response()).status == 481
    # A re-INVITE would renegotiate media the emulator never changes.
    await phone.send(phone.in_dialog("INVITE", invite, leg.local_tag, invite.cseq[0] + 3))
    assert (await phone.response()).status == 488
    await phone.send(phone.in_dialog("MESSAGE", invite, leg.local_tag, invite.cseq[0] + 4))
    refused = await phone.response()
    assert refused.status == 405
    assert "INVITE" in (refused.headers.get("Allow") or "")
    assert not leg.ended.is_set()


async def test_a_failing_glue_answers_500(start: Start) -> None:
    async def broken(leg: SipLeg) -> None:
        raise RuntimeError("glue broke")

    env = await start(on_invite=broken)
    phone = await env.phone()
    invite = await phone.call()
    failed = await phone.response()
    assert (failed.status, failed.cseq) == (500, invite.cseq)


async def test_without_glue_calls_are_480(start: Start) -> None:
    env = await start(on_invite=None)
    phone = await env.phone()
    await phone.call()
    assert (await phone.response()).status == 480
