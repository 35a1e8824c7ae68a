"""The emulator's SIP-over-WebSocket endpoint (RFC 7118): what a JsSIP page registers to and calls.

Only the SIP side: digest-authenticated REGISTER and INVITE, OPTIONS, and the dialog of each
call (ACK, BYE, CANCEL, session-timer UPDATEs, INFO). What a call does is the glue's: each
authenticated INVITE becomes a `SipLeg` handed to `on_invite`, which rings, answers, rejects or
hangs up through it and watches `leg.ended`.

Choices: a wrong password or an unknown subscriber is answered 403 (JsSIP does not retry);
after `max_auth_failures` failures the socket is closed. Nonces belong to one socket and expire
after `nonce_ttl` seconds (then `stale=true`). A REGISTER binds one Contact per subscriber,
dropped when its socket closes. A re-INVITE is refused with 488 (the media never changes), an
UPDATE without SDP (JsSIP's session refresh) is accepted. Logs name the method, the Call-ID
and the status, never credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.emulator import sip
from app.emulator.sip import Request, Response, SipError

log = logging.getLogger("calltrack.emulator.sip")

SUBPROTOCOL = "sip"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO"
# WebSocket close codes (RFC 6455 7.4.1).
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009

EndedBy = Literal["caller", "callee"]


class Directory(Protocol):
    """Where the gateway finds subscribers' SIP passwords."""

    def password_of(self, username: str) -> str | None:
        """The password of an active subscriber; None when unknown or expired."""
        ...


OnInvite = Callable[["SipLeg"], Awaitable[None]]


class SipLegError(RuntimeError):
    """A leg method called when the leg's state does not allow it."""


@dataclass
class Registration:
    """One subscriber's binding: the Contact JsSIP registered, until when."""

    username: str
    contact: str
    expires_at: float
    connection: _Connection = field(repr=False, compare=False)


class SipLeg:
    """One authenticated INVITE from a subscriber: what the glue answers, rejects or ends."""

    def __init__(self, connection: _Connection, invite: Request, username: str) -> None:
        self._connection = connection
        self.invite = invite
        self.call_id = invite.call_id
        self.username = username
        self.dialled_uri = invite.uri
        self.dialled = sip.parse_uri(invite.uri).user or ""
        self.headers: dict[str, str] = {}
        for name, value in invite.headers:
            if name.lower().startswith("x-"):
                known = self.headers.get(name)
                self.headers[name] = value if known is None else f"{known}, {value}"
        self.offer_sdp = invite.body
        self.confirmed = asyncio.Event()
        self.ended = asyncio.Event()
        self.ended_by: EndedBy | None = None
        self.local_tag = sip.new_tag()
        self._final: int | None = None
        self._local_cseq = 0

    @property
    def final_status(self) -> int | None:
        """The final response sent to the INVITE (200 once answered), if any."""
        return self._final

    @property
    def answered(self) -> bool:
        """Whether the INVITE was answered 200."""
        return self._final == 200

    def _response(
        self, status: int, reason: str | None = None, *, contact: bool = False
    ) -> Response:
        """A response to the INVITE in this leg's dialog (same To-tag every time)."""
        headers = [("Contact", self._contact())] if contact else []
        return sip.response_to(self.invite, status, reason, to_tag=self.local_tag, headers=headers)

    def _contact(self) -> str:
        # The dialled URI stands for the callee; JsSIP sends in-dialog requests on its socket.
        return f"<{self.dialled_uri}>"

    async def ringing(self) -> None:
        """Send 180 Ringing; nothing once the INVITE has a final response or the leg ended."""
        if self._final is None and not self.ended.is_set():
            await self._connection.send(self._response(180, contact=True))

    async def answer(self, sdp: str) -> bool:
        """Send 200 OK with the SDP answer; False when the caller has already gone."""
        if self.ended.is_set():
            return False
        if self._final is not None:
            raise SipLegError(f"the INVITE already has a final response ({self._final})")
        self._final = 200
        response = self._response(200, contact=True)
        response.headers.add("Allow", ALLOW)
        response.headers.add("Content-Type", "application/sdp")
        response.body = sdp
        if not await self._connection.send(response):
            self._end("caller")
            return False
        return True

    async def reject(self, code: int, reason: str | None = None) -> None:
        """Send a final error response (300-699); nothing if answered or ended already."""
        if not 300 <= code <= 699:
            raise ValueError("a rejection is a 3xx-6xx status")
        if self._final is not None or self.ended.is_set():
            return
        self._final = code
        self._end("callee")
        await self._connection.send(self._response(code, reason))

    async def hangup(self) -> None:
        """End the call from the callee's side: BYE once answered, else a 480 rejection."""
        if self.ended.is_set():
            return
        if self._final is None:
            await self.reject(480)
            return
        # A UAS may not send BYE before the ACK arrives (RFC 3261 15); wait for it, bounded.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._connection.gateway.transaction_timeout):
                await self.confirmed.wait()
        if self.ended.is_set():
            return  # the caller's BYE crossed ours
        self._end("callee")
        await self._connection.request(self._bye())

    def _bye(self) -> Request:
        """A BYE to the caller's Contact, From and To swapped, this side's own CSeq."""
        self._local_cseq += 1
        contact = self.invite.headers.get("Contact") or self.invite.headers.get("From") or ""
        target = sip.parse_name_addr(contact).uri
        own = sip.with_param(self.invite.headers.get("To") or "", "tag", self.local_tag)
        bye = Request("BYE", target)
        bye.headers.add("Via", self._connection.via())
        bye.headers.add("Max-Forwards", "70")
        bye.headers.add("From", own)
        bye.headers.add("To", self.invite.headers.get("From") or "")
        bye.headers.add("Call-ID", self.call_id)
        bye.headers.add("CSeq", f"{self._local_cseq} BYE")
        return bye

    def _end(self, by: EndedBy) -> None:
        if self.ended.is_set():
            return
        self.ended_by = by
        self.ended.set()
        if self._connection.legs.get(self.call_id) is self:
            del self._connection.legs[self.call_id]
        log.info("sip call %s ended by %s", self.call_id, by)


class _Connection:
    """One WebSocket: its nonces, failures, calls and the requests this side sent."""

    def __init__(self, gateway: SipGateway, websocket: WebSocket) -> None:
        self.gateway = gateway
        self.websocket = websocket
        self.nonces = sip.NonceStore(gateway.nonce_ttl, clock=gateway.clock)
        self.failures = 0
        self.legs: dict[str, SipLeg] = {}
        # Requests this side sent, by branch; None when the socket closed first.
        self.pending: dict[str, asyncio.Future[Response | None]] = {}
        self.open = True
        self._lock = asyncio.Lock()
        secure = websocket.scope.get("scheme") == "wss"
        self.transport = "WSS" if secure else "WS"
        self.host = sip.new_tag() + ".invalid"

    def via(self) -> str:
        """A Via for a request this side sends."""
        return f"SIP/2.0/{self.transport} {self.host};branch={sip.new_branch()}"

    async def send(self, message: Request | Response) -> bool:
        """Send one message; False when the socket is gone."""
        if not self.open:
            return False
        try:
            async with self._lock:
                await self.websocket.send_text(message.serialise())
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.open = False
            return False
        if isinstance(message, Response):
            method = (message.headers.get("CSeq") or "").rpartition(" ")[2]
            log.info("sip %s %s -> %d", method, message.call_id, message.status)
        else:
            log.info("sip %s %s sent", message.method, message.call_id)
        return True

    async def request(self, message: Request) -> Response | None:
        """Send a request and wait (bounded) for its final response."""
        branch = message.branch or ""
        future: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
        self.pending[branch] = future
        try:
            if not await self.send(message):
                return None
            async with asyncio.timeout(self.gateway.transaction_timeout):
                return await future
        except TimeoutError:
            log.info("sip %s %s: no answer", message.method, message.call_id)
            return None
        finally:
            self.pending.pop(branch, None)

    async def run(self) -> None:
        """Read frames until the socket closes."""
        while True:
            frame = await self.websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            data: str | bytes = frame.get("text") or frame.get("bytes") or ""
            size = len(data.encode() if isinstance(data, str) else data)
            if size > self.gateway.max_message:
                log.info("sip message of %d bytes refused: socket closed", size)
                await self.close(CLOSE_TOO_BIG)
                return
            if not data.strip():
                continue  # CRLF keep-alive
            try:
                message = sip.parse(data, max_size=self.gateway.max_message)
            except SipError as exc:
                log.info("sip unparsable message dropped: %s", exc)
                continue
            if isinstance(message, Response):
                self._response(message)
            else:
                await self._request(message)
            if not self.open:
                return

    async def close(self, code: int) -> None:
        """Close the socket (once)."""
        if self.open:
            self.open = False
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.websocket.close(code)

    def closed(self) -> None:
        """The socket is gone: its calls end as the caller's hang-up, its bindings go."""
        self.open = False
        for leg in list(self.legs.values()):
            leg._end("caller")
        for future in self.pending.values():
            if not future.done():
                future.set_result(None)
        registrations = self.gateway.registrations
        for username in [u for u, r in registrations.items() if r.connection is self]:
            del registrations[username]

    def _response(self, response: Response) -> None:
        future = self.pending.get(response.branch or "")
        if future is not None and not future.done() and response.status >= 200:
            future.set_result(response)

    async def _request(self, request: Request) -> None:
        try:
            valid = request.cseq[1] == request.method and bool(request.vias and request.call_id)
            for name in ("From", "To"):
                sip.parse_name_addr(request.headers.get(name) or "")
            sip.parse_uri(request.uri)
        except SipError:
            valid = False
        if not valid:
            if request.method != "ACK" and request.headers.get("Via"):
                await self.send(sip.response_to(request, 400))
            return
        handler = {
            "REGISTER": self._register,
            "INVITE": self._invite,
            "ACK": self._ack,
            "BYE": self._bye,
            "CANCEL": self._cancel,
            "OPTIONS": self._options,
            "UPDATE": self._in_dialog,
            "INFO": self._in_dialog,
        }.get(request.method)
        if handler is None:
            await self.send(sip.response_to(request, 405, headers=[("Allow", ALLOW)]))
            return
        await handler(request)

    # --- authentication ---------------------------------------------------------------------

    async def _authenticate(self, request: Request, proxy: bool) -> str | None:
        """The authenticated username; else the challenge or refusal is sent and None returned."""
        header = "Proxy-Authorization" if proxy else "Authorization"
        value = request.headers.get(header)
        if value is None:
            await self._challenge(request, proxy)
            return None
        credentials = sip.parse_authorization(value)
        if credentials is None or credentials.uri != request.uri:
            await self._fail(request, 400)
            return None
        if credentials.realm != self.gateway.domain:
            await self._challenge(request, proxy)
            return None
        password = self.gateway.directory.password_of(credentials.username)
        state = self.nonces.state(credentials.nonce)
        if password is None or state == "unknown":
            # Unknown subscriber, or a nonce this socket never gave: nothing to verify against.
            await self._fail(request, 403)
            return None
        if not sip.verify(credentials, request.method, password):
            await self._fail(request, 403)
            return None
        if state == "stale":
            await self._challenge(request, proxy, stale=True)
            return None
        if not self.nonces.use(credentials.nonce, credentials.nc):
            await self._challenge(request, proxy)  # a replayed nonce-count
            return None
        return credentials.username

    async def _challenge(self, request: Request, proxy: bool, *, stale: bool = False) -> None:
        value = sip.challenge(self.gateway.domain, self.nonces.issue(), stale=stale)
        header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        await self.send(sip.response_to(request, 407 if proxy else 401, headers=[(header, value)]))

    async def _fail(self, request: Request, status: int) -> None:
        """Refuse the credentials; too many refusals close the socket (no guessing)."""
        self.failures += 1
        await self.send(sip.response_to(request, status))
        if self.failures >= self.gateway.max_auth_failures:
            log.info("sip %d failed authentications: socket closed", self.failures)
            await self.close(CLOSE_POLICY)

    # --- requests -----------------------------------------------------------------------------

    async def _register(self, request: Request) -> None:
        username = await self._authenticate(request, proxy=False)
        if username is None:
            return
        if sip.user_of(request.headers.get("To") or "") != username:
            await self.send(sip.response_to(request, 403))  # someone else's address
            return
        contacts = [c for line in request.headers.get_all("Contact") for c in sip.split_list(line)]
        registrations = self.gateway.registrations
        default = request.headers.get("Expires")
        bound: list[str] = []
        for contact in contacts:
            if contact == "*":
                registrations.pop(username, None)
                continue
            try:
                addr = sip.parse_name_addr(contact)
                expires = int(addr.params.get("expires") or default or self.gateway.max_expires)
            except (SipError, ValueError):
                await self.send(sip.response_to(request, 400))
                return
            expires = max(0, min(expires, self.gateway.max_expires))
            if expires == 0:
                registrations.pop(username, None)
                continue
            deadline = self.gateway.clock() + expires
            registrations[username] = Registration(username, contact, deadline, self)
            bound.append(sip.with_param(contact, "expires", str(expires)))
        headers = [("Contact", contact) for contact in bound]
        if not contacts and (current := self.gateway.registration(username)) is not None:
            remaining = max(1, int(current.expires_at - self.gateway.clock()))
            headers.append(("Contact", sip.with_param(current.contact, "expires", str(remaining))))
        await self.send(sip.response_to(request, 200, headers=headers))

    async def _options(self, request: Request) -> None:
        extra = [("Allow", ALLOW), ("Accept", "application/sdp")]
        await self.send(sip.response_to(request, 200, headers=extra))

    async def _invite(self, request: Request) -> None:
        call_id = request.call_id
        if request.to_tag is not None:
            # A re-INVITE: the emulator's media never renegotiates.
            leg = self.legs.get(call_id)
            status = 481 if leg is None or leg.local_tag != request.to_tag else 488
            await self.send(sip.response_to(request, status))
            return
        known = self.legs.get(call_id)
        if known is not None:
            if known.invite.cseq != request.cseq:
                await self.send(sip.response_to(request, 482))
            return  # a retransmission: the transaction answers already
        username = await self._authenticate(request, proxy=True)
        if username is None:
            return
        if sip.user_of(request.headers.get("From") or "") != username:
            await self.send(sip.response_to(request, 403))  # calling as someone else
            return
        if not request.body or request.content_type != "application/sdp":
            await self.send(sip.response_to(request, 488))  # the emulator needs an offer
            return
        if "Contact" not in request.headers:
            await self.send(sip.response_to(request, 400))
            return
        if len(self.legs) >= self.gateway.max_dialogs:
            await self.send(sip.response_to(request, 486))
            return
        await self.send(sip.response_to(request, 100))
        leg = SipLeg(self, request, username)
        self.legs[call_id] = leg
        self.gateway._start(leg)

    async def _ack(self, request: Request) -> None:
        leg = self.legs.get(request.call_id)
        # The ACK of a non-2xx final (407, 487, ...) belongs to the INVITE transaction: ignored.
        if leg is not None and leg.answered and request.cseq[0] == leg.invite.cseq[0]:
            leg.confirmed.set()
            log.info("sip ACK %s: confirmed", request.call_id)

    def _dialog(self, request: Request) -> SipLeg | None:
        """The leg an in-dialog request belongs to (Call-ID and both tags match)."""
        leg = self.legs.get(request.call_id)
        if leg is None or request.to_tag != leg.local_tag:
            return None
        return leg if request.from_tag == leg.invite.from_tag else None

    async def _bye(self, request: Request) -> None:
        leg = self._dialog(request)
        if leg is None:
            await self.send(sip.response_to(request, 481))
            return
        await self.send(sip.response_to(request, 200))
        if leg.final_status is None:
            # A BYE before any final response also ends the INVITE (RFC 3261 15.1.2).
            leg._final = 487
            await self.send(leg._response(487))
        leg._end("caller")

    async def _cancel(self, request: Request) -> None:
        leg = self.legs.get(request.call_id)
        if (
            leg is None
            or request.branch != leg.invite.branch
            or request.cseq[0] != leg.invite.cseq[0]
        ):
            await self.send(sip.response_to(request, 481))
            return
        # The CANCEL's response carries the INVITE's To-tag (RFC 3261 9.2).
        await self.send(sip.response_to(request, 200, to_tag=leg.local_tag))
        if leg.final_status is None:
            leg._final = 487
            leg._end("caller")
            await self.send(leg._response(487))

    async def _in_dialog(self, request: Request) -> None:
        leg = self._dialog(request)
        if leg is None:
            await self.send(sip.response_to(request, 481))
        elif request.method == "UPDATE" and request.body:
            await self.send(sip.response_to(request, 488))
        else:
            # INFO (DTMF) is acknowledged; an UPDATE without SDP refreshes the session timer.
            contact = [("Contact", leg._contact())]
            await self.send(sip.response_to(request, 200, headers=contact))


class SipGateway:
    """The `/sip` WebSocket endpoint: an ASGI app for `WebSocketRoute("/sip", gateway)`."""

    def __init__(
        self,
        directory: Directory,
        *,
        domain: str,
        on_invite: OnInvite | None = None,
        max_expires: int = 600,
        nonce_ttl: float = 300.0,
        max_message: int = sip.MAX_MESSAGE,
        max_dialogs: int = 4,
        max_auth_failures: int = 5,
        transaction_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.domain = domain
        self.on_invite = on_invite
        self.max_expires = max_expires
        self.nonce_ttl = nonce_ttl
        self.max_message = max_message
        self.max_dialogs = max_dialogs
        self.max_auth_failures = max_auth_failures
        self.transaction_timeout = transaction_timeout
        self.clock = clock
        self.registrations: dict[str, Registration] = {}
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def registration(self, username: str) -> Registration | None:
        """The subscriber's live binding, if any."""
        found = self.registrations.get(username)
        if found is not None and found.expires_at <= self.clock():
            del self.registrations[username]
            return None
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one WebSocket: only the `sip` subprotocol is accepted."""
        websocket = WebSocket(scope, receive, send)
        if SUBPROTOCOL not in scope.get("subprotocols", []):
            log.info("sip socket refused: no 'sip' subprotocol offered")
            await websocket.close(CLOSE_PROTOCOL_ERROR)  # before accept: an HTTP 403
            return
        await websocket.accept(subprotocol=SUBPROTOCOL)
        connection = _Connection(self, websocket)
        self._connections.add(connection)
        try:
            await connection.run()
        except WebSocketDisconnect:
            pass
        finally:
            self._connections.discard(connection)
            connection.closed()

    def _start(self, leg: SipLeg) -> None:
        """Hand a new leg to `on_invite` as a task (480 when nobody takes calls)."""
        task = asyncio.create_task(self._run(leg), name=f"sip-invite-{leg.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, leg: SipLeg) -> None:
        if self.on_invite is None:
            await leg.reject(480)
            return
        try:
            await self.on_invite(leg)
        except Exception:
            log.exception("sip on_invite failed for %s", leg.call_id)
            if leg.final_status is None:
                await leg.reject(500)
            else:
                await leg.hangup()

    async def aclose(self) -> None:
        """Cancel the on_invite tasks and close every socket."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in list(self._connections):
            await connection.close(1001)
