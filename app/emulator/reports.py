"""Session updates and CDRs, shaped like Cloudonix's and delivered like them: at least once."""

from __future__ import annotations

import itertools
from typing import Any
from uuid import uuid4

from app.emulator.hooks import ServiceClient
from app.emulator.models import Call, Json


class Reporter:
    """Sends a call's session updates (numbered emulator-wide) and its CDR."""

    def __init__(self, http: ServiceClient) -> None:
        self.http = http
        self._ids = itertools.count(1)

    def _event(self, call: Call, action: str, reason: str | None) -> Json:
        call.events_made += 1
        session = call.session()
        return {
            "id": next(self._ids),
            "eventId": uuid4().hex,
            "token": session["token"],
            "domain": session["domain"],
            "callerId": session["callerId"],
            "destination": session["destination"],
            "direction": session["direction"],
            "status": session["status"],
            "action": action,
            "reason": reason,
            "callStartTime": session["callStartTime"],
            "callAnswerTime": session["callAnswerTime"],
            "callEndTime": session["callEndTime"],
            "profile": session["profile"],
        }

    async def _send(self, call: Call, event: Json, *, as_list: bool) -> None:
        # Cloudonix sometimes wraps one event in a list; receivers must take both.
        body: Any = [event] if as_list else event
        if await self.http.post_json(call, call.session_url, body, "session update"):
            call.session_updates_sent += 1

    async def update(self, call: Call, action: str, reason: str | None = None) -> None:
        """Report the call's current status; every third event goes as a one-element list."""
        event = self._event(call, action, reason)
        await self._send(call, event, as_list=call.events_made % 3 == 2)

    async def final(self, call: Call, reason: str | None) -> None:
        """Report the end, twice with the same eventId: delivery is at least once."""
        event = self._event(call, "hangup", reason)
        as_list = call.events_made % 3 == 2
        await self._send(call, event, as_list=as_list)
        await self._send(call, event, as_list=not as_list)

    async def cdr(self, call: Call) -> None:
        """Send the call detail record to the service."""
        record: Json = {
            "session": call.session(),
            "from": call.from_,
            "to": call.to,
            "direction": call.direction,
            "disposition": call.disposition,
            "duration": call.duration(),
            "billsec": call.billsec(),
            "call_id": call.call_id,
            "domain": call.domain,
        }
        if call.recording_url is not None:
            record["recording_url"] = call.recording_url
        url = f"{call.service_url}/webhooks/cloudonix/cdr"
        call.cdr_sent = await self.http.post_json(call, url, record, "CDR")
