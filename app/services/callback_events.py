"""What the platform tells us about a callback's calls: the agent's leg and the customer's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import CallbackAttempt, CallbackRequest, Pool
from app.db.repositories import callbacks as repo
from app.db.repositories import calls, sessions
from app.providers.voice.base import CallState
from app.services.callback_flow import (
    ABANDONED,
    LIVE_ATTEMPT,
    Policy,
    agent_answered,
    agent_failed,
    customer_failed,
    finish,
    is_current,
)
from app.services.marketing import channel_of

# A leg the platform reports ended while the customer's dial result has not come yet: the
# result may simply be late (webhooks are not ordered), so the verdict waits this long.
RESULT_GRACE = timedelta(seconds=10)
ANSWERED = frozenset({"completed", "answered", "answer"})


@dataclass(frozen=True)
class AgentEvent:
    """A session update of an agent's leg."""

    attempt_id: int
    call_id: str
    state: CallState
    answered: bool


async def _locked(
    db: AsyncSession, attempt_id: int
) -> tuple[CallbackRequest, CallbackAttempt, Pool] | None:
    """The attempt with its request (row-locked, so events apply one at a time) and pool."""
    attempt = await repo.attempt_for_update(db, attempt_id)
    if attempt is None:
        return None
    request = await repo.get_for_update(db, attempt.request_id)
    assert request is not None  # a foreign key
    attempt = await repo.attempt_for_update(db, attempt_id)  # as of the lock
    assert attempt is not None
    return request, attempt, await repo.pool_of(db, request.pool_id)


def _ours(attempt: CallbackAttempt, call_id: str) -> bool:
    """Learn the call id from the first event; events of any other call are not ours."""
    if attempt.provider_call_id is None:
        attempt.provider_call_id = call_id
        return True
    return attempt.provider_call_id == call_id


async def on_agent_event(
    db: AsyncSession, event: AgentEvent, *, now: datetime, policy: Policy
) -> str | None:
    """Apply a session update; the call id to hang up when the call must not go on."""
    found = await _locked(db, event.attempt_id)
    if found is None:
        return None
    request, attempt, pool = found
    if not _ours(attempt, event.call_id):
        return None
    if attempt.status == "originating":
        attempt.status = "ringing_agent"
    # A call given up on (cancelled, concluded never placed, or its agent counted out) must
    # not go on to dial the customer: hang it up.
    if request.status == "cancelled" or attempt.status in ABANDONED:
        return None if event.state.final else event.call_id
    # A leg that ended "completed" was answered, whether or not its answer time came along.
    if event.answered or event.state in (CallState.ANSWERED, CallState.COMPLETED):
        agent_answered(request, attempt, now=now, policy=policy)
    if not event.state.final or attempt.status not in LIVE_ATTEMPT:
        return None
    if attempt.status != "agent_answered":
        agent_failed(request, attempt, pool, reason=event.state.value, now=now, policy=policy)
    elif attempt.ended_at is None:
        attempt.ended_at = now
        if is_current(request, attempt):
            request.next_attempt_at = now + RESULT_GRACE
    return None


@dataclass(frozen=True)
class DialOutcome:
    """What the agent hears next, and the call of another attempt to hang up, if any.

    `outcome` is 'completed', 'retry' (the customer will be called again), 'given_up' or
    'ignored'.
    """

    outcome: str
    hang_up: str | None = None


async def on_dial_result(
    db: AsyncSession,
    *,
    attempt_id: int,
    call_id: str,
    status: str,
    talk_seconds: int,
    now: datetime,
    policy: Policy,
) -> DialOutcome:
    """Apply the customer's dial result."""
    found = await _locked(db, attempt_id)
    if found is None:
        return DialOutcome("ignored")
    request, attempt, pool = found
    if not _ours(attempt, call_id):
        return DialOutcome("ignored")
    if status in ANSWERED:
        return await _reached(db, request, attempt, pool, talk_seconds=talk_seconds, now=now)
    if attempt.status not in LIVE_ATTEMPT:
        return DialOutcome("ignored")  # a repeated delivery, or an attempt already concluded
    customer_failed(request, attempt, pool, status=status, now=now, policy=policy)
    if request.current_attempt_id != attempt.id or request.status == "cancelled":
        return DialOutcome("ignored")
    return DialOutcome("retry" if request.status == "customer_unreachable" else "given_up")


async def _reached(
    db: AsyncSession,
    request: CallbackRequest,
    attempt: CallbackAttempt,
    pool: Pool,
    *,
    talk_seconds: int,
    now: datetime,
) -> DialOutcome:
    """The customer answered: record the call and complete the request, once."""
    if attempt.status == "completed":
        return DialOutcome("completed")  # a repeated delivery
    attempt.status = "completed"
    attempt.customer_status = "completed"
    attempt.talk_seconds = talk_seconds
    attempt.ended_at = now
    stored = await _record_call(db, request, attempt, pool, now=now)
    hang_up = None
    # A late result counts whatever was concluded since: the customer was reached, so the
    # request is done, and a newer attempt's call (about to ring them again) is ended.
    if request.status not in ("cancelled", "completed"):
        current_id = request.current_attempt_id
        if current_id is not None and current_id != attempt.id:
            current = await repo.attempt_for_update(db, current_id)
            if current is not None and current.status in LIVE_ATTEMPT:
                current.status = "cancelled"
                current.ended_at = now
                current.error = "an earlier attempt reached the customer"
                hang_up = current.provider_call_id
        finish(request, "completed", now)
        request.last_error = None
        request.call_id = stored
        request.current_attempt_id = attempt.id
    return DialOutcome("completed", hang_up)


async def request_channel(
    db: AsyncSession, request: CallbackRequest, pool: Pool
) -> tuple[str | None, str | None, str | None] | None:
    """(source, medium, campaign) of the request: a static pool's own, else its visit's."""
    if pool.source:
        return pool.source, pool.medium, pool.campaign
    session = await sessions.get(db, request.session_id) if request.session_id else None
    if session is None:
        return None
    channel = channel_of(session)
    return channel.source, channel.medium, channel.campaign


async def _record_call(
    db: AsyncSession,
    request: CallbackRequest,
    attempt: CallbackAttempt,
    pool: Pool,
    *,
    now: datetime,
) -> int | None:
    """Store the bridged call like an inbound one, attributed to the request's visit."""
    assert attempt.provider_call_id is not None
    source, medium, campaign = await request_channel(db, request, pool) or (None, None, None)
    talk = attempt.talk_seconds or 0
    started = attempt.created_at
    await calls.insert_call(
        db,
        {
            "provider": attempt.provider,
            "provider_call_id": attempt.provider_call_id,
            "direction": "outbound-api",
            "from_number": request.phone,
            "to_number": attempt.agent,
            "caller_name": None,
            "number_id": None,
            "pool_id": pool.id,
            "session_id": request.session_id,
            "lease_id": None,
            "attribution": "callback",
            "first_time": not await calls.called_before(db, caller=request.phone, before=started),
            "source": source,
            "medium": medium,
            "campaign": campaign,
            "forwarded_to": attempt.agent,
            "status": CallState.COMPLETED.value,
            "dial_status": "completed",
            "started_at": started,
            "answered_at": max(started, now - timedelta(seconds=talk)),
            "ended_at": now,
            "duration_seconds": max(0, round((now - started).total_seconds())),
            "talk_seconds": talk,
            "created_at": now,
            "updated_at": now,
        },
    )
    stored = await calls.get_by_provider_id(
        db, provider=attempt.provider, call_id=attempt.provider_call_id
    )
    return stored.id if stored is not None else None
