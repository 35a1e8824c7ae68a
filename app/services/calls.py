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
from app.db.repositories import calls
from app.db.repositories.calls import NumberRoute
from app.providers.voice.base import CallState
from app.services.attribution import attribute
from app.services.phone import InvalidPhone, to_e164

# A provider clock this far from ours is not trusted for the call's start.
MAX_CLOCK_SKEW = timedelta(minutes=10)
_RANK = {CallState.QUEUED: 0, CallState.RINGING: 1, CallState.ANSWERED: 2}


def _rank(state: str) -> int:
    return _RANK.get(CallState(state), 3)


@dataclass(frozen=True)
class InboundCall:
    """A call the platform asks us to route."""

    call_id: str
    from_number: str
    to_number: str
    caller_name: str | None
    direction: str
    reported_start: datetime | None
    received_at: datetime


@dataclass(frozen=True)
class Progress:
    """A state change of a call (a session update)."""

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
    """How the forwarded leg ended."""

    call_id: str
    status: str
    received_at: datetime


def normalise(raw: str | None, region: str) -> str | None:
    """E.164 when the text is a valid number; otherwise the text (anonymous callers)."""
    if raw is None or not raw.strip():
        return None
    try:
        return to_e164(raw, region=region)
    except InvalidPhone:
        return raw.strip()[:64]


def start_of(reported: datetime | None, received_at: datetime) -> datetime:
    """The call's start: the platform's time unless it is implausibly far from ours."""
    if reported is None or abs(reported - received_at) > MAX_CLOCK_SKEW:
        return received_at
    return reported


async def record(
    db: AsyncSession,
    *,
    provider: str,
    call_id: str,
    from_number: str | None,
    to_number: str | None,
    caller_name: str | None,
    direction: str,
    started_at: datetime,
    route: NumberRoute | None,
    now: datetime,
) -> Call:
    """Store the call once, attributed at its start; a second delivery returns the first."""
    existing = await calls.get_by_provider_id(db, provider=provider, call_id=call_id)
    if existing is not None:
        return existing
    caller = from_number if from_number and from_number.startswith("+") else None
    found = await attribute(db, route=route, caller=caller, started_at=started_at)
    first_time = (
        None
        if caller is None
        else not await calls.called_before(db, caller=caller, before=started_at)
    )
    await calls.insert_call(
        db,
        {
            "provider": provider,
            "provider_call_id": call_id,
            "direction": direction,
            "from_number": from_number or "anonymous",
            "to_number": to_number or "",
            "caller_name": caller_name[:100] if caller_name else None,
            "number_id": route.number_id if route else None,
            "pool_id": route.pool_id if route else None,
            "session_id": found.session_id,
            "lease_id": found.lease_id,
            "attribution": found.method.value,
            "first_time": first_time,
            "source": found.source,
            "medium": found.medium,
            "campaign": found.campaign,
            "status": CallState.RINGING.value,
            "started_at": started_at,
            "created_at": now,
            "updated_at": now,
        },
    )
    stored = await calls.get_by_provider_id(db, provider=provider, call_id=call_id)
    assert stored is not None  # inserted above, or by a concurrent delivery of the same call
    return stored


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
    if event.answered_at is not None and call.answered_at is None and not dial_failed:
        call.answered_at = event.answered_at
    # The CDR's end is the platform's final word; a session update only fills a gap.
    if event.ended_at is not None and (call.ended_at is None or event.kind == "cdr"):
        call.ended_at = event.ended_at
    if call.ended_at is not None and call.duration_seconds is None:
        call.duration_seconds = max(0, round((call.ended_at - call.started_at).total_seconds()))
    for field in ("talk_seconds", "duration_seconds", "disposition", "recording_url"):
        value = getattr(event, field)
        if value is not None:
            setattr(call, field, value)
    if dial_failed:
        call.talk_seconds = 0
    elif call.talk_seconds is None and call.answered_at is not None and call.ended_at is not None:
        call.talk_seconds = max(0, round((call.ended_at - call.answered_at).total_seconds()))


async def apply_progress(
    db: AsyncSession,
    *,
    provider: str,
    event: Progress,
    route: NumberRoute | None,
    now: datetime,
) -> Call | None:
    """Apply a session update or CDR once; a call first seen here is recorded from it."""
    if not await calls.insert_event(
        db,
        call_id=event.call_id,
        key=event.event_key,
        kind=event.kind,
        status=event.state.value,
        now=now,
    ):
        return None
    call = await calls.get_for_update(db, provider=provider, call_id=event.call_id)
    if call is None:
        await record(
            db,
            provider=provider,
            call_id=event.call_id,
            from_number=event.from_number,
            to_number=event.to_number,
            caller_name=None,
            direction=event.direction,
            started_at=start_of(event.started_at, event.received_at),
            route=route,
            now=now,
        )
        call = await calls.get_for_update(db, provider=provider, call_id=event.call_id)
        assert call is not None
    _advance(call, event)
    call.updated_at = now
    await db.flush()
    return call


async def apply_dial_result(
    db: AsyncSession, *, provider: str, result: DialResult, now: datetime
) -> bool:
    """Remember how the forwarded leg ended; False when already known or the call is not."""
    if not await calls.insert_event(
        db,
        call_id=result.call_id,
        key=f"dial:{result.status}",
        kind="dial",
        status=result.status,
        now=now,
    ):
        return False
    call = await calls.get_for_update(db, provider=provider, call_id=result.call_id)
    if call is None:
        return False
    call.dial_status = result.status[:16]
    failure = DIAL_FAILURES.get(call.dial_status)
    if failure is not None:
        call.status = failure.value
        call.answered_at = None
        call.talk_seconds = 0
    call.updated_at = now
    await db.flush()
    return True
