"""A worker's two steps with the platform: place an attempt's call, check on an overdue one.

What the platform's answer means decides what happens to the attempt:
- the call was placed: expect its session updates; should the attempt have been given up
  on meanwhile (cancelled, concluded never placed), the call is hung up at once;
- surely not placed (429, 5xx before handling, any refusal): the attempt does not count,
  and the worker's breaker counts a platform failure;
- perhaps placed (a timeout or gateway error after the request went out): never dialled
  again blind; its session updates, or their absence for a whole wait, decide.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from app.db.models import CallbackAttempt, CallbackRequest, Pool
from app.db.repositories import callbacks as repo
from app.providers.voice import cxml
from app.providers.voice.base import (
    CallInfo,
    CallNotFound,
    CallState,
    Originate,
    ProviderError,
    ProviderRejected,
    ProviderRetryable,
    VoiceProvider,
)
from app.services import callback_plan as plan
from app.services import callbacks
from app.services.callback_breaker import Breaker
from app.services.callback_events import RESULT_GRACE
from app.services.callback_flow import (
    LIVE_ATTEMPT,
    Policy,
    agent_failed,
    customer_failed,
    finish,
    is_current,
)
from app.services.callback_plan import Change

log = logging.getLogger("calltrack.callbacks")

# An agent leg answered and still going this long after the customer's ring time was
# surely a conversation: without its dial result, the customer counts as reached.
TALKED_AFTER = timedelta(seconds=20)
SETTLE_TRIES = 3


@dataclass(frozen=True)
class WebhookUrls:
    """Where the platform reports on a callback's calls."""

    base: str

    def session_update(self, attempt_id: int) -> str:
        """The agent leg's session updates."""
        return f"{self.base}/webhooks/cloudonix/callbacks/{attempt_id}/session-update"

    def dial_action(self, attempt_id: int) -> str:
        """The customer leg's dial result."""
        return f"{self.base}/webhooks/cloudonix/callbacks/{attempt_id}/dial-action"


class CallPlacer:
    """Places and checks the calls of claimed requests."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider: VoiceProvider,
        policy: Policy,
        clock: Clock,
        urls: WebhookUrls,
        breaker: Breaker,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.provider = provider
        self.policy = policy
        self.clock = clock
        self.urls = urls
        self.breaker = breaker

    async def settle(
        self, request_id: str, attempt_id: int, token: str, change: Change
    ) -> str | None:
        """Apply `change` under the request's lock and let go of the claim; the attempt's state."""
        async with self.sessionmaker() as db:
            state = await plan.settle(
                db,
                request_id=request_id,
                token=token,
                attempt_id=attempt_id,
                now=self.clock(),
                change=change,
            )
            await db.commit()
            return state

    async def dial(self, step: plan.Dial, token: str) -> None:
        """Ring the agent; once they answer, the CXML tells them and dials the customer."""
        document = (
            cxml.Response()
            .say(step.whisper)
            .dial(
                step.customer,
                caller_id=step.caller_id,
                action=self.urls.dial_action(step.attempt_id),
                timeout=self.policy.customer_ring,
                time_limit=self.policy.time_limit,
            )
            .render()
        )
        order = Originate(
            destination=step.agent,
            caller_id=step.caller_id,
            cxml=document,
            status_callback=self.urls.session_update(step.attempt_id),
            timeout_seconds=self.policy.agent_ring,
        )
        policy = self.policy
        keeper = asyncio.create_task(self._keep_claim(step, token))
        try:
            info = await self.provider.originate(order)
        except (ProviderRetryable, ProviderRejected) as exc:
            # Surely not placed. A refusal is counted as the platform's fault too: agents'
            # numbers are checked when set, so a 4xx here is a key, domain or caller-id
            # problem that would fail every request alike.
            wait = self.breaker.failed(getattr(exc, "retry_after", None))
            error, previous = f"platform: {exc}", step.previous_status

            def failed(r: CallbackRequest, a: CallbackAttempt, p: Pool, now: datetime) -> None:
                plan.not_placed(r, a, error, due=now + timedelta(seconds=wait), previous=previous)

            await self.settle(step.request_id, step.attempt_id, token, failed)
        except ProviderError:  # OutcomeUnknown, or an answer we could not read
            log.warning("callback %s: the platform's answer was lost", step.request_id)

            def unknown(r: CallbackRequest, a: CallbackAttempt, p: Pool, now: datetime) -> None:
                plan.await_word(r, a, now=now, policy=policy)

            await self.settle(step.request_id, step.attempt_id, token, unknown)
        else:
            self.breaker.succeeded()
            await self._placed(step, token, info)
        finally:
            keeper.cancel()

    async def _keep_claim(self, step: plan.Dial, token: str) -> None:
        """While the platform takes its time (pacing, retries), keep the claim alive."""
        period = self.policy.claim.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            try:
                async with self.sessionmaker() as db:
                    await repo.extend_claim(
                        db,
                        request_id=step.request_id,
                        attempt_id=step.attempt_id,
                        token=token,
                        until=self.clock() + self.policy.claim,
                    )
                    await db.commit()
            except Exception:  # the claim lapses then, and the call is checked on
                log.warning("callback %s: could not extend its claim", step.request_id)

    async def _placed(self, step: plan.Dial, token: str, info: CallInfo) -> None:
        policy = self.policy

        def ringing(r: CallbackRequest, a: CallbackAttempt, p: Pool, now: datetime) -> None:
            plan.placed(r, a, info.call_id, now=now, policy=policy)

        for attempt in range(SETTLE_TRIES):
            try:
                state = await self.settle(step.request_id, step.attempt_id, token, ringing)
                break
            except Exception:
                if attempt == SETTLE_TRIES - 1:
                    # A call we cannot track would be dialled again: end it instead.
                    log.exception("callback %s: placed call not recorded", step.request_id)
                    await callbacks.hang_up(self.provider, info.call_id, reason="not-recorded")
                    return
                await asyncio.sleep(0.5 * 2**attempt)
        if state is not None and state not in LIVE_ATTEMPT and state != "completed":
            # Given up on while the platform was placing it (cancelled, or concluded never
            # placed by another worker): it must not ring the customer.
            await callbacks.hang_up(self.provider, info.call_id, reason="abandoned")

    async def check(self, step: plan.Check, token: str) -> None:
        """Ask the platform how an overdue call went, and conclude once it has ended."""
        info: CallInfo | None = None
        if not step.leg_over:
            try:
                info = await self.provider.get_call(step.call_id)
            except CallNotFound:
                info = None
            except ProviderError as exc:
                if not step.past_deadline:
                    log.warning("callback %s: could not check its call: %s", step.request_id, exc)
                    await self.settle(step.request_id, step.attempt_id, token, self._later())
                    return
            if info is not None and not info.state.final:
                if not step.past_deadline:
                    await self.settle(step.request_id, step.attempt_id, token, self._later())
                    return
                # A call "live" past any possible end is a stuck record: end it, conclude.
                await callbacks.hang_up(self.provider, step.call_id, reason="overdue")
        await self.settle(step.request_id, step.attempt_id, token, self._conclusion(info))

    def _later(self) -> Change:
        policy = self.policy

        def change(r: CallbackRequest, a: CallbackAttempt, p: Pool, now: datetime) -> None:
            plan.look_again(r, a, now=now, policy=policy)

        return change

    def _conclusion(self, info: CallInfo | None) -> Change:
        """How an ended call went, from the platform's record of the agent's leg."""
        policy = self.policy
        answered = info is not None and (
            info.answered_at is not None or info.state == CallState.COMPLETED
        )
        reason = info.state.value if info is not None else "lost"
        ring = timedelta(seconds=policy.customer_ring)

        def conclude(r: CallbackRequest, a: CallbackAttempt, p: Pool, now: datetime) -> None:
            if a.status not in LIVE_ATTEMPT:
                return  # a webhook settled it meanwhile
            if not (a.status == "agent_answered" or answered):
                agent_failed(r, a, p, reason=reason, now=now, policy=policy)
                return
            ended = (info.ended_at if info else None) or a.ended_at
            if ended is not None and now < ended + RESULT_GRACE:
                if is_current(r, a):  # the dial result may be on its way
                    r.next_attempt_at = ended + RESULT_GRACE
                return
            started = (info.answered_at if info else None) or a.agent_answered_at
            if started is not None and ended is not None and ended - started > ring + TALKED_AFTER:
                # Long enough to have been a conversation: calling again would be worse than
                # a missing talk time.
                a.status, a.customer_status, a.ended_at = "completed", "unverified", ended
                if is_current(r, a):
                    finish(r, "completed", now, "completed without the platform's dial result")
                return
            customer_failed(r, a, p, status="no-result", now=now, policy=policy)

        return conclude
