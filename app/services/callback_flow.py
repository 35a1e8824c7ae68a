"""How a callback request moves: the rules shared by the worker and the webhooks.

A request rings its pool's agents in order (one round); the first agent to answer hears who
asked and is bridged to the customer. A round without an answering agent, or a customer who
does not pick up, is retried later with jittered exponential backoff, within the pool's
business hours, until the attempts or the request's age run out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.db.models import (
    CALLBACK_ACTIVE,
    CALLBACK_LIVE_ATTEMPT,
    CallbackAttempt,
    CallbackRequest,
    Pool,
)
from app.services import hours, outbox
from app.settings import Settings

IN_FLIGHT = frozenset({"calling_agent", "calling_customer"})
ACTIVE = frozenset(CALLBACK_ACTIVE)
# Attempt states in which the platform may still be running the call.
LIVE_ATTEMPT = frozenset(CALLBACK_LIVE_ATTEMPT)
# Attempts given up on: a call of theirs still running must not reach the customer.
ABANDONED = frozenset({"not_placed", "cancelled", "agent_unavailable"})
# Beyond the rings and the longest conversation, a call still "live" is a stuck record.
DEADLINE_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Policy:
    """Timings and limits of callbacks, from the settings."""

    max_attempts: int
    max_age: timedelta
    retry_base: float
    retry_max: float
    agent_ring: int
    customer_ring: int
    time_limit: int
    claim: timedelta
    check: timedelta
    orphan: timedelta
    number_limit: int

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        """The policy the settings describe."""
        return cls(
            max_attempts=settings.callback_max_attempts,
            max_age=timedelta(seconds=settings.callback_max_age_seconds),
            retry_base=settings.callback_retry_seconds,
            retry_max=settings.callback_retry_max_seconds,
            agent_ring=settings.callback_agent_ring_seconds,
            customer_ring=settings.callback_customer_ring_seconds,
            time_limit=settings.callback_time_limit_seconds,
            claim=timedelta(seconds=settings.callback_claim_seconds),
            check=timedelta(seconds=settings.callback_check_seconds),
            orphan=timedelta(seconds=settings.callback_orphan_seconds),
            number_limit=settings.callback_number_limit,
        )

    def deadline(self, attempt: CallbackAttempt) -> datetime:
        """When a call of this attempt must be over, whatever its records say."""
        rings = timedelta(seconds=self.agent_ring + self.customer_ring + self.time_limit)
        return attempt.created_at + rings + DEADLINE_MARGIN


def agents_of(pool: Pool) -> list[str]:
    """The agents to ring, in order; a pool without agents rings its destination."""
    return list(pool.agents or []) or [pool.destination]


def backoff(policy: Policy, rounds: int, rand: Callable[[], float] = random.random) -> timedelta:
    """The pause before round `rounds + 1`: doubling, capped, jittered by +-20%.

    The jitter spreads retries of requests that failed together (an outage) apart.
    """
    base = min(policy.retry_max, policy.retry_base * 2 ** max(0, rounds - 1))
    return timedelta(seconds=base * (0.8 + 0.4 * rand()))


def is_current(request: CallbackRequest, attempt: CallbackAttempt) -> bool:
    """Whether the attempt is the one the request is waiting on."""
    return request.current_attempt_id == attempt.id and request.status in ACTIVE


def finish(request: CallbackRequest, status: str, now: datetime, error: str | None = None) -> None:
    """End the request for good; a claim on it (perhaps a dead worker's) ends too."""
    request.status = status
    request.ended_at = now
    request.updated_at = now
    request.claimed_by = request.claim_token = request.claimed_until = None
    if error is not None:
        request.last_error = error[:255]
    # Keyed by outcome: a late dial result may turn a failed request into a completed one.
    outbox.record_with(request, outbox.CALLBACK_COMPLETED, f"{request.id}:{status}", now=now)


def retry_later(
    request: CallbackRequest,
    pool: Pool,
    *,
    status: str,
    error: str,
    now: datetime,
    policy: Policy,
) -> None:
    """Wait for the next round, or give up when attempts or age are exhausted."""
    request.agent_index = 0
    request.updated_at = now
    if request.attempts >= policy.max_attempts:
        finish(request, "failed", now, f"{error}; {request.attempts} attempts made")
        return
    due = hours.next_opening(
        hours.parse(pool.business_hours), now + backoff(policy, request.attempts)
    )
    if due >= request.expires_at:
        finish(request, "failed", now, f"{error}; the request expired")
        return
    request.status = status
    request.next_attempt_at = due
    request.last_error = error[:255]


def agent_failed(
    request: CallbackRequest,
    attempt: CallbackAttempt,
    pool: Pool,
    *,
    reason: str,
    now: datetime,
    policy: Policy,
) -> None:
    """The agent did not take the call: ring the next agent, or retry the round later."""
    if attempt.status == "cancelled":
        return
    attempt.status = "agent_unavailable"
    attempt.error = reason[:255]
    attempt.ended_at = attempt.ended_at or now
    if not is_current(request, attempt):
        return
    if request.agent_index + 1 < len(agents_of(pool)):
        request.agent_index += 1
        request.status = "agent_unavailable"
        request.next_attempt_at = now
        request.updated_at = now
        request.last_error = f"agent {reason}"
        return
    retry_later(
        request,
        pool,
        status="agent_unavailable",
        error=f"no agent answered ({reason})",
        now=now,
        policy=policy,
    )


def customer_failed(
    request: CallbackRequest,
    attempt: CallbackAttempt,
    pool: Pool,
    *,
    status: str,
    now: datetime,
    policy: Policy,
) -> None:
    """The customer did not pick up: retry later."""
    if attempt.status == "cancelled":
        return
    attempt.status = "customer_unreachable"
    attempt.customer_status = status[:16]
    attempt.ended_at = attempt.ended_at or now
    if is_current(request, attempt):
        retry_later(
            request,
            pool,
            status="customer_unreachable",
            error=f"customer {status}",
            now=now,
            policy=policy,
        )


def agent_answered(
    request: CallbackRequest, attempt: CallbackAttempt, *, now: datetime, policy: Policy
) -> None:
    """The agent picked up; the platform now rings the customer."""
    if attempt.status not in {"originating", "ringing_agent"}:
        return
    attempt.status = "agent_answered"
    attempt.agent_answered_at = now
    if is_current(request, attempt) and request.status == "calling_agent":
        request.status = "calling_customer"
        request.updated_at = now
        # Look again once the customer has had time to answer, in case no word comes.
        ring = timedelta(seconds=policy.customer_ring)
        request.next_attempt_at = max(request.next_attempt_at, now + ring + policy.check)
