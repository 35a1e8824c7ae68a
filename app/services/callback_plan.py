"""The worker's side of a request, in the database: decide the next step, settle its result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import CallbackAttempt, CallbackRequest, Pool
from app.db.repositories import callbacks as repo
from app.services import hours
from app.services.callback_events import request_channel
from app.services.callback_flow import (
    ACTIVE,
    IN_FLIGHT,
    LIVE_ATTEMPT,
    Policy,
    agents_of,
    finish,
    is_current,
)

Change = Callable[[CallbackRequest, CallbackAttempt, Pool, datetime], None]
# However many requests name a number, its phone rings at most `number_limit` times in this.
NUMBER_WINDOW = timedelta(hours=1)
# How long a request waits for one of its agents to be free again.
AGENTS_BUSY_WAIT = timedelta(seconds=2)


@dataclass(frozen=True)
class Dial:
    """Call `agent` now; when they answer, tell them `whisper` and dial the customer."""

    request_id: str
    attempt_id: int
    agent: str
    customer: str
    caller_id: str
    whisper: str
    previous_status: str


@dataclass(frozen=True)
class Check:
    """A call is under way but overdue: ask the platform how it went."""

    request_id: str
    attempt_id: int
    call_id: str
    leg_over: bool
    past_deadline: bool


def _release(request: CallbackRequest, token: str) -> None:
    if request.claim_token == token:
        request.claimed_by = request.claim_token = request.claimed_until = None


async def prepare(
    db: AsyncSession, *, request_id: str, token: str, now: datetime, policy: Policy, provider: str
) -> Dial | Check | None:
    """The next step of a claimed request; None when it needs nothing now."""
    request = await repo.get_for_update(db, request_id)
    if request is None or request.claim_token != token:
        return None  # the claim lapsed and another worker has it
    step = await _step(db, request, now=now, policy=policy, provider=provider)
    if step is None:
        _release(request, token)
    return step


async def _step(
    db: AsyncSession, request: CallbackRequest, *, now: datetime, policy: Policy, provider: str
) -> Dial | Check | None:
    if request.status not in ACTIVE:
        return None
    pool = await repo.pool_of(db, request.pool_id)
    attempt = await repo.current_attempt(db, request)
    if attempt is not None and attempt.status in LIVE_ATTEMPT:
        return _overdue(request, attempt, now=now, policy=policy)
    if request.agent_index == 0 and await _called_too_often(db, request, now, policy):
        return None
    if now >= request.expires_at:
        finish(request, "failed", now, "expired before anyone could be reached")
        return None
    business = hours.parse(pool.business_hours)
    if not hours.is_open(business, now):
        opening = hours.next_opening(business, now)
        if opening >= request.expires_at:
            finish(request, "failed", now, "expired before the next opening")
        else:
            request.status = "scheduled"
            request.next_attempt_at = opening
            request.updated_at = now
        return None
    agents = agents_of(pool)
    await repo.lock_pool(db, pool.id)
    free = _free_agent(agents, request.agent_index, await repo.busy_agents(db, agents))
    if free is None:
        # Every agent left in this round is on another callback: wait for one to be free,
        # without counting an attempt (the tutorial's "no agent available").
        request.next_attempt_at = now + AGENTS_BUSY_WAIT
        request.updated_at = now
        request.last_error = "waiting: every agent is on another callback"
        return None
    if request.agent_index == 0:
        if request.attempts >= policy.max_attempts:
            finish(request, "failed", now, f"{request.attempts} attempts made")
            return None
        request.attempts += 1
    request.agent_index = free
    agent = agents[free]
    attempt = await repo.add_attempt(
        db,
        request_id=request.id,
        round=request.attempts,
        agent=agent,
        status="originating",
        provider=provider,
        created_at=now,
    )
    previous = request.status
    request.status = "calling_agent"
    request.current_attempt_id = attempt.id
    request.updated_at = now
    return Dial(
        request_id=request.id,
        attempt_id=attempt.id,
        agent=agent,
        customer=request.phone,
        caller_id=pool.fallback_number,
        whisper=await _whisper(db, request, pool),
        previous_status=previous,
    )


def _free_agent(agents: list[str], start: int, busy: set[str]) -> int | None:
    """The first agent from `start` on who is not on another callback call."""
    for index in range(start, len(agents)):
        if agents[index] not in busy:
            return index
    return None


def _overdue(
    request: CallbackRequest, attempt: CallbackAttempt, *, now: datetime, policy: Policy
) -> Check | None:
    """A request whose call is (or may be) under way and has not been heard of in time."""
    if attempt.provider_call_id is None:
        heard_by = attempt.created_at + policy.orphan
        if now < heard_by:
            request.next_attempt_at = heard_by
            return None
        # Recorded, then no word from the platform for a whole claim (the worker keeps its
        # claim alive while it waits on the platform): the worker died before the call was
        # placed, or the platform never placed it. Should the call turn up after all, its
        # first session update finds the attempt abandoned and hangs it up.
        not_placed(request, attempt, "no word from the platform", due=now, previous="queued")
        return None
    leg_over = attempt.status == "agent_answered" and attempt.ended_at is not None
    past = now >= policy.deadline(attempt)
    return Check(request.id, attempt.id, attempt.provider_call_id, leg_over, past)


async def _called_too_often(
    db: AsyncSession, request: CallbackRequest, now: datetime, policy: Policy
) -> bool:
    """Whether the customer's phone already rang the hourly limit; if so, wait."""
    since = now - NUMBER_WINDOW
    rung = await repo.customer_rings_since(db, phone=request.phone, since=since)
    if len(rung) < policy.number_limit:
        return False
    request.next_attempt_at = rung[0] + NUMBER_WINDOW
    request.updated_at = now
    request.last_error = "waiting: this number was called the most an hour allows"
    return True


async def _whisper(db: AsyncSession, request: CallbackRequest, pool: Pool) -> str:
    """What the agent hears first: that this is a callback, and where the visitor came from."""
    channel = await request_channel(db, request, pool)
    if channel is None:
        return "Callback request from the website. Connecting you to the customer now."
    source, medium, campaign = channel
    where = f"{source}, {medium}" if medium else source
    tail = f", campaign {campaign}" if campaign else ""
    return f"Callback request from {where}{tail}. Connecting you to the customer now."


async def settle(
    db: AsyncSession, *, request_id: str, token: str, attempt_id: int, now: datetime, change: Change
) -> str | None:
    """Apply a step's result under the request's lock, let go of the claim; the attempt's state.

    The change applies even when the claim lapsed meanwhile: the rules check the attempt's
    and the request's states, so a result that came too late changes nothing it should not.
    """
    request = await repo.get_for_update(db, request_id)
    attempt = await repo.attempt_for_update(db, attempt_id)
    if request is None or attempt is None:
        return None
    change(request, attempt, await repo.pool_of(db, request.pool_id), now)
    _release(request, token)
    return attempt.status


async def release(db: AsyncSession, *, request_id: str, token: str) -> None:
    """Let go of the claim, leaving the request due when the claim would have lapsed."""
    request = await repo.get_for_update(db, request_id)
    if request is not None:
        _release(request, token)


def placed(
    request: CallbackRequest,
    attempt: CallbackAttempt,
    call_id: str,
    *,
    now: datetime,
    policy: Policy,
) -> None:
    """The platform took the call: expect its updates, and look again if none come."""
    if attempt.provider_call_id is None:
        attempt.provider_call_id = call_id
    if attempt.status == "originating":
        attempt.status = "ringing_agent"
    if is_current(request, attempt) and request.status == "calling_agent":
        request.next_attempt_at = now + timedelta(seconds=policy.agent_ring) + policy.check


def not_placed(
    request: CallbackRequest, attempt: CallbackAttempt, error: str, *, due: datetime, previous: str
) -> None:
    """No call was placed: the attempt does not count, and the request waits until `due`."""
    if attempt.status == "cancelled":
        return
    attempt.status = "not_placed"
    attempt.error = error[:255]
    attempt.ended_at = attempt.ended_at or due
    if not is_current(request, attempt):
        return
    if request.agent_index == 0 and attempt.round == request.attempts:
        request.attempts -= 1
    request.status = previous if previous not in IN_FLIGHT else "queued"
    request.next_attempt_at = due
    request.last_error = error[:255]


def await_word(
    request: CallbackRequest, attempt: CallbackAttempt, *, now: datetime, policy: Policy
) -> None:
    """The platform's answer was lost: the call may be ringing, so wait to hear of it."""
    attempt.error = "the platform's answer was lost"
    if attempt.provider_call_id is not None:  # its session updates have come already
        placed(request, attempt, attempt.provider_call_id, now=now, policy=policy)
    elif is_current(request, attempt):
        # From now, not from the attempt's start: the answer may have taken a while to be lost.
        request.next_attempt_at = now + policy.orphan


def look_again(
    request: CallbackRequest, attempt: CallbackAttempt, *, now: datetime, policy: Policy
) -> None:
    """The call is still going: check on it later."""
    if is_current(request, attempt) and attempt.status in LIVE_ATTEMPT:
        request.next_attempt_at = now + policy.check
