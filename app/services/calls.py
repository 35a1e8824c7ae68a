"""Record calls and move them through their life: answered, ended, measured.

Every handler is idempotent: an event is applied once, keyed by the provider's call id
and the event's own key, and a call's state only moves forward, so the same webhook twice,
or two webhooks out of order, change nothing wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Call
from app.db.repositories import calls, web_calls
from app.db.repositories.calls import NumberRoute
from app.providers.voice.base import CallState
from app.services import outbox
from app.services.attribution import attribute
from app.services.phone import InvalidPhone, to_e164

_RANK = {CallState.QUEUED: 0, CallState.RINGING: 1, CallState.ANSWERED: 2}
# Directions whose first event may create a call; calls we place ourselves (callbacks)
# exist before the platform reports on them.
CREATES_CALLS = {"inbound", "subscriber"}
# A browser (Web-To-Call) call: the platform's `From` is the subscriber we made for a visit.
SUBSCRIBER = "subscriber"


def _rank(state: str) -> int:
    return _RANK.get(CallState(state), 3)


@dataclass(frozen=True)
class InboundCall:
    """A call the platform asks us to route; it started when we received it."""

    call_id: str
    from_number: str
    to_number: str
    caller_name: str | None
    direction: str
    received_at: datetime
    # A browser call's visit as the page put it in the call (header or dialled URI).
    claimed_visit: str | None = None


@dataclass(frozen=True)
class Progress:
    """A state change of a call (a session update or CDR), its times on our clock."""

    call_id: str
    event_key: str
    kind: str
    state: CallState
    from_number: str | None
    to_number: str | None
    direction: str
    started_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    received_at: datetime
    talk_seconds: int | None = None
    duration_seconds: int | None = None
    disposition: str | None = None
    recording_url: str | None = None


@dataclass(frozen=True)
class DialResult:
    """How the forwarded leg ended (the platform repeats the call's own fields with it)."""

    call_id: str
    status: str
    received_at: datetime
    from_number: str | None = None
    to_number: str | None = None
    direction: str = "inbound"
    dial_seconds: int = 0


def number_text(raw: str | None, region: str) -> str | None:
    """E.164 when the text is a valid number; otherwise the text (anonymous callers)."""
    if raw is None or not raw.strip():
        return None
    return caller_e164(raw, region) or raw.strip()[:64]


def caller_e164(raw: str | None, region: str) -> str | None:
    """The caller's E.164 number, or None when hidden or not a valid number.

    Only a valid number may tie calls together: placeholder ids such as '+10000000000'
    would join strangers.
    """
    if raw is None or not raw.strip():
        return None
    try:
        return to_e164(raw, region=region)
    except InvalidPhone:
        return None


@dataclass(frozen=True)
class Recorded:
    """A call as `record` left it."""

    attribution: str
    created: bool


async def record(
    db: AsyncSession,
    *,
    provider: str,
    call_id: str,
    from_number: str | None,
    caller: str | None,
    to_number: str | None,
    caller_name: str | None,
    direction: str,
    started_at: datetime,
    route: NumberRoute | None,
    now: datetime,
    forwarded_to: str | None = None,
) -> Recorded:
    """Store the call once, attributed at its start.

    A new call is the common case, so it is attributed and inserted straight away; a
    repeated delivery finds the insert refused by the unique call id and keeps the first.
    """
    web = (
        await web_calls.caller_of(db, from_number)
        if direction == SUBSCRIBER and from_number
        else None
    )
    found = await attribute(
        db,
        route=route,
        caller=caller,
        started_at=started_at,
        web_session=web.session_id if web else None,
    )
    first_time = (
        None
        if caller is None
        else not await calls.called_before(db, caller=caller, before=started_at)
    )
    created = await calls.insert_call(
        db,
        {
            "provider": provider,
            "provider_call_id": call_id,
            "direction": direction[:16],
            "from_number": from_number or "anonymous",
            "to_number": to_number or "",
            "caller_name": caller_name[:100] if caller_name else None,
            "number_id": route.number_id if route else None,
            "pool_id": web.pool_id if web else route.pool_id if route else None,
            "session_id": found.session_id,
            "lease_id": found.lease_id,
            "attribution": found.method.value,
            "first_time": first_time,
            "source": found.source,
            "medium": found.medium,
            "campaign": found.campaign,
            "forwarded_to": forwarded_to,
            "status": CallState.RINGING.value,
            "started_at": started_at,
            "created_at": now,
            "updated_at": now,
        },
    )
    if created:
        if web is not None:
            await web_calls.set_call(db, web.credential_id, call_id)
        return Recorded(attribution=found.method.value, created=True)
    stored = await calls.attribution_of(db, provider=provider, call_id=call_id)
    assert stored is not None  # the insert was refused because this row exists
    if forwarded_to is not None:  # the call was first seen in an event without routing
        await calls.fill_forwarded_to(
            db, provider=provider, call_id=call_id, forwarded_to=forwarded_to
        )
    return Recorded(attribution=stored, created=False)


# How the forwarded leg failed -> the call's state. The caller's own leg may still be
# answered (by our apology), but nobody at the business took the call.
DIAL_FAILURES = {
    "busy": CallState.BUSY,
    "no-answer": CallState.NO_ANSWER,
    "noanswer": CallState.NO_ANSWER,
    "failed": CallState.FAILED,
    "canceled": CallState.CANCELED,
}


def _advance(call: Call, event: Progress) -> None:
    dial_failed = call.dial_status in DIAL_FAILURES
    moves_on = _rank(event.state) > _rank(call.status)
    if not dial_failed and (moves_on or (event.kind == "cdr" and _rank(call.status) == 3)):
        call.status = event.state.value
    # An event that reports the end carries the call's whole timeline, measured at once;
    # it refines what earlier events said. The CDR is the platform's final word.
    complete = event.kind == "cdr" or (event.ended_at is not None and call.disposition is None)
    # A callback's answer and talk time are its customer's leg; the platform's events
    # describe the agent's leg, which also holds the whisper and the customer's ringing.
    customer_leg = call.attribution == "callback"
    if (
        event.answered_at is not None
        and not dial_failed
        and not customer_leg
        and (complete or not call.answered_at)
    ):
        call.answered_at = event.answered_at
    if event.ended_at is not None and (call.ended_at is None or complete):
        call.ended_at = event.ended_at
    if call.ended_at is not None and call.duration_seconds is None:
        call.duration_seconds = max(0, round((call.ended_at - call.started_at).total_seconds()))
    for field in ("talk_seconds", "duration_seconds", "disposition", "recording_url"):
        value = getattr(event, field)
        if value is not None and not (field == "talk_seconds" and customer_leg):
            setattr(call, field, value)
    if dial_failed:
        call.talk_seconds = 0
    elif call.talk_seconds is None and call.answered_at is not None and call.ended_at is not None:
        call.talk_seconds = max(0, round((call.ended_at - call.answered_at).total_seconds()))


async def _event_call(
    db: AsyncSession,
    *,
    provider: str,
    call_id: str,
    key: str,
    kind: str,
    status: str,
    direction: str,
    from_number: str | None,
    to_number: str | None,
    started_at: datetime,
    region: str,
    route: NumberRoute | None,
    now: datetime,
) -> tuple[Call | None, bool]:
    """Remember an event once and lock its call; (the call or None, whether it was created).

    None: the event was seen before, or belongs to a call of another direction that we do
    not know (not remembered then, so it applies once the call exists). An inbound call
    first seen in an event is recorded from it.
    """
    call = await calls.get_for_update(db, provider=provider, call_id=call_id)
    if call is None and direction not in CREATES_CALLS:
        return None, False
    if not await calls.insert_event(
        db, call_id=call_id, key=key, kind=kind, status=status, now=now
    ):
        return None, False
    if call is not None:
        return call, False
    recorded = await record(
        db,
        provider=provider,
        call_id=call_id,
        from_number=number_text(from_number, region),
        caller=caller_e164(from_number, region),
        to_number=number_text(to_number, region),
        caller_name=None,
        direction=direction,
        started_at=started_at,
        route=route,
        now=now,
    )
    call = await calls.get_for_update(db, provider=provider, call_id=call_id)
    assert call is not None
    return call, recorded.created


async def apply_progress(
    db: AsyncSession,
    *,
    provider: str,
    event: Progress,
    region: str,
    route: NumberRoute | None,
    now: datetime,
    settle: timedelta = timedelta(0),
) -> tuple[Call | None, bool]:
    """Apply a session update or CDR once; (the call, whether this event created it).

    An ended call records call.completed, held `settle` for the CDR's final figures.
    """
    call, created = await _event_call(
        db,
        provider=provider,
        call_id=event.call_id,
        key=event.event_key,
        kind=event.kind,
        status=event.state.value,
        direction=event.direction,
        from_number=event.from_number,
        to_number=event.to_number,
        started_at=event.started_at or event.received_at,
        region=region,
        route=route,
        now=now,
    )
    if call is None:
        return None, False
    _advance(call, event)
    call.updated_at = now
    await db.flush()
    if call.ended_at is not None:
        await outbox.call_ended(db, call.id, now=now, final=event.kind == "cdr", settle=settle)
    return call, created


async def apply_dial_result(
    db: AsyncSession,
    *,
    provider: str,
    result: DialResult,
    region: str,
    route: NumberRoute | None,
    now: datetime,
) -> tuple[Call | None, bool]:
    """Remember how the forwarded leg ended once; (the call, whether this result created it).

    The dial action repeats the call's own fields, so a call not stored yet (its voice
    request lost) is recorded from them.
    """
    call, created = await _event_call(
        db,
        provider=provider,
        call_id=result.call_id,
        key=f"dial:{result.status}",
        kind="dial",
        status=result.status,
        direction=result.direction,
        from_number=result.from_number,
        to_number=result.to_number,
        # The dial has ended by now; its own length is the best guess of the start.
        started_at=result.received_at - timedelta(seconds=result.dial_seconds),
        region=region,
        route=route,
        now=now,
    )
    if call is None:
        return None, False
    call.dial_status = result.status[:16]
    failure = DIAL_FAILURES.get(call.dial_status)
    if failure is not None:
        call.status = failure.value
        call.answered_at = None
        call.talk_seconds = 0
    call.updated_at = now
    await db.flush()
    return call, created
