"""The calls in progress: start them, hang them up, report their end, forget old ones."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal
from uuid import uuid4

from app.emulator.config import EmulatorConfig
from app.emulator.faults import FaultQueue
from app.emulator.hooks import ServiceClient
from app.emulator.models import DEFAULT_SCRIPT, Call, CallEnded, InboundRequest, Script
from app.emulator.player import Player
from app.emulator.reports import Reporter

_PHONE = re.compile(r"[+\d\s().-]+")
# Real seconds a DELETE waits for the call's end to be fixed.
_HANGUP_WAIT = 5.0


def behaviour_key(number: str) -> str:
    """Numbers match on their digits ('+1 256…' is '1256…'); SIP URIs as written."""
    number = number.strip()
    if _PHONE.fullmatch(number):
        return re.sub(r"\D", "", number)
    return number.lower()


class CallManager:
    """Owns every call, the dialled parties' behaviours, scripted faults and background tasks."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.http = ServiceClient(config)
        self.reporter = Reporter(self.http)
        self.calls: dict[str, Call] = {}
        self.behaviours: dict[str, Script] = {}
        self.faults = FaultQueue()
        self._tasks: set[asyncio.Task[None]] = set()

    def behaviour(self, number: str) -> Script:
        """How `number` behaves when dialled: as registered, else the default."""
        return self.behaviours.get(behaviour_key(number), DEFAULT_SCRIPT)

    def called(self, number: str | None = None) -> list[Call]:
        """Every known call (oldest first), or those to `number`, matched as behaviours are."""
        if number is None:
            return list(self.calls.values())
        key = behaviour_key(number)
        return [call for call in self.calls.values() if behaviour_key(call.to) == key]

    def _new_call(
        self,
        direction: Literal["inbound", "outbound-api", "subscriber"],
        from_: str,
        to: str,
        service_url: str,
        emulator_url: str,
        session_url: str | None = None,
    ) -> Call:
        service_url = (self.config.service_url or service_url).rstrip("/")
        call = Call(
            token=uuid4().hex,
            direction=direction,
            from_=from_,
            to=to,
            domain=self.config.domain,
            started=self.config.clock(),
            service_url=service_url,
            emulator_url=emulator_url.rstrip("/"),
            session_url=session_url or f"{service_url}/webhooks/cloudonix/session-update",
        )
        self.calls[call.token] = call
        self._forget_old()
        return call

    def start_inbound(self, request: InboundRequest, service_url: str, emulator_url: str) -> Call:
        """A person dials `request.to`: play the call in the background."""
        call = self._new_call("inbound", request.from_, request.to, service_url, emulator_url)
        call.caller_name = request.caller_name or ""
        call.method = request.method
        call.source = request.source
        call.script = request.script
        self._spawn(self._run(call, lambda player: player.run_inbound(), request.hangup_after))
        return call

    def start_subscriber(
        self,
        *,
        username: str,
        dialled: str,
        sip_headers: dict[str, str],
        on_answer: Callable[[], Awaitable[None]],
        service_url: str,
    ) -> Call:
        """A subscriber (a browser over SIP) calls: ask the voice application, like inbound."""
        call = self._new_call(
            "subscriber", username, dialled, service_url, service_url.rstrip("/") + "/emulator"
        )
        call.source = "subscriber"
        call.sip_headers = dict(sip_headers)
        call.on_answer = on_answer
        self._spawn(self._run(call, lambda player: player.run_inbound(), None))
        return call

    def start_outbound(
        self,
        destination: str,
        caller_id: str,
        *,
        cxml: str | None,
        url: str | None,
        callback: str | None,
        timeout: float,
        service_url: str,
        emulator_url: str,
    ) -> Call:
        """An API-originated call: ring `destination`, then run the application."""
        call = self._new_call(
            "outbound-api", caller_id, destination, service_url, emulator_url, callback
        )
        call.source = "api"
        self._spawn(self._run(call, lambda player: player.run_outbound(cxml, url, timeout), None))
        return call

    async def hangup(
        self, call: Call, by: str = "api", reason: str | None = None, at: float | None = None
    ) -> None:
        """End a call now (DELETE, or the caller giving up); a no-op once it is ending."""
        if call.hangup is not None or call.end_offset is not None:
            return
        call.hangup = by
        call.hangup_reason = reason
        call.fixed_end = at
        if call.player is not None:
            call.player.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.hung_up.wait(), _HANGUP_WAIT)

    async def aclose(self) -> None:
        """Cancel every running call and close the HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.http.aclose()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        # Keep a reference (the loop holds tasks only weakly) and let aclose() find it.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _player(self, call: Call) -> Player:
        script = call.script

        def behaviour(number: str) -> Script:
            return script if script is not None else self.behaviour(number)

        return Player(call, self.http, self.reporter, behaviour, self.config.speed)

    async def _run(
        self,
        call: Call,
        play: Callable[[Player], Awaitable[None]],
        hangup_after: float | None,
    ) -> None:
        """Play the call in a child task a hangup can cancel, then report its end."""
        try:
            await self.reporter.update(call, "created")
            inner = call.player = self._spawn(self._play(call, play))
            if call.hangup is not None:
                inner.cancel()  # hung up before it got going
            if hangup_after is not None:
                self._spawn(self._caller_gives_up(call, hangup_after))
            await asyncio.wait({inner})
            await self._finish(call)
        except asyncio.CancelledError:
            # The emulator is closing: stop where we are, without reporting.
            if call.player is not None:
                call.player.cancel()
            call.end_offset = call.offset
            call.hangup = call.hangup or "api"
            call.state = "ended"
            call.hung_up.set()
            call.ended.set()
            raise

    async def _play(self, call: Call, play: Callable[[Player], Awaitable[None]]) -> None:
        try:
            await play(self._player(call))
        except CallEnded as end:
            call.hangup = call.hangup or end.hangup
        except Exception as exc:
            # An emulator bug ends this call, visibly, rather than the emulator.
            call.errors.append(f"emulator error: {exc!r}")
            call.hangup = call.hangup or "webhook-error"

    async def _caller_gives_up(self, call: Call, after: float) -> None:
        try:
            # Ends early, quietly, when the call ends first.
            await asyncio.wait_for(call.hung_up.wait(), after / self.config.speed)
        except TimeoutError:
            await self.hangup(call, "caller", at=after)

    async def _finish(self, call: Call) -> None:
        """Fix the end, then send the last session update (twice) and the CDR."""
        _fix_end(call)
        _conclude(call)
        call.hung_up.set()
        await self.reporter.final(call, call.hangup_reason or call.hangup)
        await self.reporter.cdr(call)
        call.state = "ended"
        call.ended.set()

    def _forget_old(self) -> None:
        excess = len(self.calls) - self.config.keep_calls
        if excess <= 0:
            return
        ended = [token for token, call in self.calls.items() if call.state == "ended"]
        for token in ended[:excess]:
            del self.calls[token]


def _fix_end(call: Call) -> None:
    """The end offset: when the caller gave up, else as far as the script had played."""
    if call.fixed_end is None:
        call.end_offset = call.offset
        return
    # A timer in real time and sleeps in virtual time drift apart by a scheduling delay;
    # the caller's own deadline is the truth, and nothing can have happened after it.
    call.end_offset = call.offset = call.fixed_end
    if call.answer_offset is not None:
        call.answer_offset = min(call.answer_offset, call.fixed_end)


def _conclude(call: Call) -> None:
    """The final status and CDR disposition, from how the call went."""
    call.hangup = call.hangup or "end-of-document"
    if call.answered:
        # An answered call keeps Cloudonix's last status, "answer"; callEndTime marks the end.
        call.disposition = "ANSWER"
    elif call.hangup in ("caller", "api"):
        call.status, call.disposition = "cancel", "CANCEL"
    elif call.reject_reason is not None:
        busy = call.reject_reason == "busy"
        call.status, call.disposition = ("busy", "BUSY") if busy else ("error", "FAILED")
    elif call.ring_status == "busy":
        call.status, call.disposition = "busy", "BUSY"
    elif call.ring_status == "no-answer":
        call.status, call.disposition = "noanswer", "NOANSWER"
    else:
        call.status, call.disposition = "error", "FAILED"
