"""Subscriber calls: what the emulator does with a browser's INVITE, as Cloudonix would.

The INVITE becomes a call of direction `subscriber`: the voice application is asked (with
the INVITE's X- headers under `subscriber-sip-headers`), its CXML is played, and when the
dialled business answers, the browser's leg is answered with real media (a tone towards
the visitor; the visitor's frames are counted). Either side may hang up: a BYE from the
browser ends the emulated call; the business hanging up sends the browser a BYE. The
session updates and the CDR follow as for any call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from app.emulator import media
from app.emulator.calls import CallManager
from app.emulator.models import CallEnded
from app.emulator.sip_gateway import SipGateway, SipLeg

if TYPE_CHECKING:
    from app.emulator.app import Emulator

log = logging.getLogger("calltrack.emulator.sip")

# How a call that never connected is refused to the browser, by its CDR disposition.
_REFUSALS = {"BUSY": (486, "Busy Here"), "NOANSWER": (480, "Temporarily Unavailable")}


class WebCalls:
    """The SIP gateway's `on_invite`: plays each subscriber call through the CallManager."""

    def __init__(self, calls: CallManager, *, loopback_only: bool = True) -> None:
        self.calls = calls
        self.loopback_only = loopback_only

    async def on_invite(self, leg: SipLeg) -> None:
        """Play one browser call to its end."""
        service_url = self.calls.config.service_url
        if service_url is None:
            await leg.reject(503, "No Voice Application")
            return
        if not media.available():
            await leg.reject(488, "No WebRTC Media (install the webrtc extra)")
            return
        peer = media.MediaPeer(loopback_only=self.loopback_only)

        async def answer() -> None:
            try:
                sdp = await peer.answer(leg.offer_sdp)
            except media.MediaError as exc:
                log.warning("subscriber call %s: no media (%s)", leg.call_id, exc)
                raise CallEnded("media-error") from exc
            if not await leg.answer(sdp):
                raise CallEnded("caller")  # the browser left while the business answered

        call = self.calls.start_subscriber(
            username=leg.username,
            dialled=leg.dialled or leg.dialled_uri,
            sip_headers=leg.headers,
            on_answer=answer,
            service_url=service_url,
        )
        await leg.ringing()
        try:
            browser_left = asyncio.ensure_future(leg.ended.wait())
            call_over = asyncio.ensure_future(call.hung_up.wait())
            try:
                await asyncio.wait({browser_left, call_over}, return_when="FIRST_COMPLETED")
            finally:
                browser_left.cancel()
                call_over.cancel()
            if leg.ended.is_set() and not call.hung_up.is_set():
                await self.calls.hangup(call, "caller")
            elif leg.answered:
                await leg.hangup()
            else:
                code, reason = _REFUSALS.get(call.disposition or "", (503, "Service Unavailable"))
                await leg.reject(code, reason)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.ended.wait(), 10.0)
        finally:
            call.media = {"frames_received": peer.frames_received, "frames_sent": peer.frames_sent}
            await peer.close()


def sip_gateway(emulator: Emulator) -> SipGateway:
    """The emulator's SIP socket: its subscribers register, their calls play as above."""
    calls = WebCalls(emulator.calls, loopback_only=True)
    return SipGateway(
        emulator.subscribers, domain=emulator.config.domain, on_invite=calls.on_invite
    )
