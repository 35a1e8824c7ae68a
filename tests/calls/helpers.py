"""Cloudonix-shaped webhook requests, as the platform sends them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx

from tests.support import ADMIN, DOMAIN, WEBHOOK_TOKEN

HOOKS = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
CALLER = "+16175551212"


def new_call_id() -> str:
    """A Cloudonix session token."""
    return uuid.uuid4().hex


def ms(at: datetime) -> int:
    """Epoch milliseconds, as Cloudonix reports times."""
    return int(at.timestamp() * 1000)


def voice_body(call_id: str, *, to: str, caller: str = CALLER, at: datetime) -> dict[str, Any]:
    """The voice-application request body of a captured inbound call."""
    return {
        "CallSid": call_id,
        "Session": call_id,
        "From": caller,
        "To": to,
        "CallerName": "Jane Caller",
        "Direction": "inbound",
        "CallStatus": "in-progress",
        "Domain": DOMAIN,
        "AccountSid": DOMAIN,
        "ApiVersion": "1",
        "ApplicationSid": "calltrack",
        "SessionData": {
            "token": call_id,
            "status": "processing",
            "callStartTime": ms(at),
            "profile": {"trunk-sip-headers": {"X-Carrier": "test"}},
        },
        "Application": {"name": "calltrack", "url": "http://calltrack.test/"},
    }


def voice_headers(call_id: str, *, to: str, caller: str = CALLER) -> dict[str, str]:
    """The headers Cloudonix sends with a voice-application request."""
    return {
        **HOOKS,
        "X-CX-APIKey": "XI" + "0" * 32,
        "X-CX-Domain": DOMAIN,
        "X-CX-Session": call_id,
        "X-CX-From": caller,
        "X-CX-To": to,
        "X-CX-Source": "trunk",
        "User-Agent": "Cloudonix APP.Core/5.3.673",
    }


async def call_in(
    client: httpx.AsyncClient, *, to: str, at: datetime, caller: str = CALLER, call_id: str = ""
) -> tuple[str, httpx.Response]:
    """Deliver a voice-application request; returns the call id and the answer."""
    call_id = call_id or new_call_id()
    answer = await client.post(
        "/webhooks/cloudonix/voice",
        json=voice_body(call_id, to=to, caller=caller, at=at),
        headers=voice_headers(call_id, to=to, caller=caller),
    )
    return call_id, answer


def update(
    call_id: str,
    *,
    event: str,
    status: str,
    to: str,
    start: datetime,
    answer: datetime | None = None,
    end: datetime | None = None,
    caller: str = CALLER,
) -> dict[str, Any]:
    """A session-update notification."""
    return {
        "id": 1,
        "eventId": event,
        "token": call_id,
        "domain": DOMAIN,
        "callerId": caller,
        "destination": to,
        "direction": "inbound",
        "status": status,
        "action": None,
        "reason": None,
        "callStartTime": ms(start),
        "callAnswerTime": ms(answer) if answer else None,
        "callEndTime": ms(end) if end else None,
        "profile": {},
    }


def cdr(
    call_id: str,
    *,
    to: str,
    start: datetime,
    duration: int,
    billsec: int,
    disposition: str = "ANSWER",
    caller: str = CALLER,
    recording_url: str | None = None,
) -> dict[str, Any]:
    """A call detail record."""
    body: dict[str, Any] = {
        "session": {"token": call_id, "callStartTime": ms(start), "direction": "inbound"},
        "from": caller,
        "to": to,
        "disposition": disposition,
        "duration": duration,
        "billsec": billsec,
        "call_id": call_id,
        "domain": DOMAIN,
    }
    if recording_url:
        body["recording_url"] = recording_url
    return body


async def calls(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    """The stored calls, newest first."""
    answer = await client.get("/v1/calls", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items
