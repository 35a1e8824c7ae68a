"""Plays a call: the voice application request, then CXML verb by verb, in virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urljoin
from xml.etree.ElementTree import Element

from app.emulator.dial import play_dial, ring
from app.emulator.hooks import ServiceClient, parse_cxml
from app.emulator.models import Call, CallEnded, Script, seconds
from app.emulator.reports import Reporter

# A document that keeps redirecting to itself must not play forever.
MAX_DOCUMENTS = 50
# Seconds a <Say> takes per character: roughly 15 characters a second of speech.
SAY_RATE = 15.0


class Player:
    """Plays one call. Sleeps are virtual seconds / speed; offsets advance virtually."""

    def __init__(
        self,
        call: Call,
        http: ServiceClient,
        reporter: Reporter,
        behaviour: Callable[[str], Script],
        speed: float,
    ) -> None:
        self.call = call
        self.http = http
        self.reporter = reporter
        self.behaviour = behaviour
        self.speed = speed
        self.base_url = http.voice_url(call)
        # "callee" once a bridged party hung up; any later verb makes the end the document's.
        self.end_hint: str | None = None
        self._documents = 0

    async def wait(self, virtual: float) -> None:
        """Let `virtual` seconds pass; if interrupted, count the part that did."""
        if virtual <= 0:
            return
        loop = asyncio.get_running_loop()
        begun = loop.time()
        try:
            await asyncio.sleep(virtual / self.speed)
        except asyncio.CancelledError:
            self.call.offset += min(virtual, (loop.time() - begun) * self.speed)
            raise
        self.call.offset += virtual

    async def update(self, action: str, reason: str | None = None) -> None:
        """Send a session update with the call's current status."""
        await self.reporter.update(self.call, action, reason)

    async def answer(self) -> None:
        """Answer the caller's leg (once): it is billed from here."""
        if self.call.answered:
            return
        if self.call.on_answer is not None:
            await self.call.on_answer()
        self.call.answer_offset = self.call.offset
        self.call.status = "answer"
        await self.update("answer")

    async def fetch(
        self, url: str, method: str = "POST", extra: dict[str, object] | None = None
    ) -> tuple[int | None, Element | None]:
        """Request CXML from `url` (relative to the current document) and parse it."""
        absolute = urljoin(self.base_url, url)
        self._documents += 1
        if self._documents > MAX_DOCUMENTS:
            self.call.errors.append(f"more than {MAX_DOCUMENTS} CXML documents: stopped")
            raise CallEnded("cxml")
        status, root = await self.http.fetch_cxml(self.call, absolute, method=method, extra=extra)
        if root is not None:
            self.base_url = absolute
        return status, root

    async def run_inbound(self) -> None:
        """An inbound call: ask the voice application what to do, then do it."""
        self.call.status = "processing"
        await self.update("application-request")
        status, root = await self.fetch(self.base_url, self.call.method)
        self.call.webhook_status = status
        if root is None:
            raise CallEnded("webhook-error")
        await self.play(root)

    async def run_outbound(self, cxml: str | None, url: str | None, ring_for: float) -> None:
        """An outbound call: ring the destination, then run the application once it answers."""
        self.call.status = "ringing"
        await self.update("ringing")
        result = await ring(self, self.behaviour(self.call.to), ring_for)
        self.call.ring_status = result
        if result != "answered":
            raise CallEnded("callee")
        self.call.status = "connected"
        await self.update("connected")
        await self.answer()
        if cxml is not None:
            self.call.cxml.append(cxml)
            root = parse_cxml(self.call, cxml, "the originate request")
        else:
            await self.update("application-request")
            status, root = await self.fetch(url or self.base_url)
            self.call.webhook_status = status
        if root is None:
            raise CallEnded("webhook-error")
        await self.play(root)

    async def play(self, root: Element) -> None:
        """Play documents until the call ends; never returns normally."""
        current: Element | None = root
        while current is not None:
            current = await self._verbs(current)
        raise CallEnded(self.end_hint or "end-of-document")

    async def _verbs(self, root: Element) -> Element | None:
        """Play one document's verbs; the next document (Redirect, Dial action) or None."""
        for verb in root:
            self.end_hint = None
            tag = verb.tag
            if tag == "Say":
                await self.answer()
                await self.say(verb, self.call.said)
            elif tag == "Pause":
                # Like TwiML: a leading <Pause> delays the answer rather than answering.
                await self.wait(seconds(verb.get("length"), 1.0))
            elif tag in ("Play", "Record"):
                await self.answer()
                await self.wait(seconds(verb.get("maxLength"), 1.0) if tag == "Record" else 1.0)
            elif tag == "Gather":
                await self.answer()
                await self.gather(verb)
            elif tag == "Hangup":
                raise CallEnded("cxml")
            elif tag == "Reject":
                if not self.call.answered:
                    self.call.reject_reason = verb.get("reason", "rejected")
                raise CallEnded("cxml")
            elif tag == "Redirect":
                target = (verb.text or "").strip()
                _, following = await self.fetch(target, verb.get("method", "POST"))
                if following is None:
                    raise CallEnded("webhook-error")
                return following
            elif tag == "Dial":
                following = await play_dial(self, verb)
                if following is not None:
                    return following
            else:
                self.call.errors.append(f"unsupported verb <{tag}> skipped")
        return None

    async def say(self, verb: Element, into: list[str]) -> None:
        """Speak a <Say>: note its text and take the time speaking it takes."""
        text = " ".join((verb.text or "").split())
        into.append(text)
        await self.wait(len(text) / SAY_RATE)

    async def gather(self, verb: Element) -> None:
        """A <Gather> whose caller presses nothing: play its prompts, wait, go on."""
        for noun in verb:
            if noun.tag == "Say":
                await self.say(noun, self.call.said)
            elif noun.tag in ("Pause", "Play"):
                await self.wait(seconds(noun.get("length"), 1.0))
        await self.wait(seconds(verb.get("timeout"), 5.0))
