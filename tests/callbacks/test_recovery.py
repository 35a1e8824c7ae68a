"""Callbacks when things go wrong between the worker, the platform and its webhooks."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
from fastapi import FastAPI

from app.providers.voice.base import CallInfo, CallState, Originate
from app.services.callback_breaker import MAX_PAUSE, Breaker
from app.services.callback_worker import CallbackWorker
from app.state import AppState
from tests.callbacks.helpers import AGENTS, CUSTOMER, ask, callback_pool, ops
from tests.callbacks.test_webhooks import (
    BASE,
    FakeVoice,
    answered,
    dial_body,
    post_dial,
    post_update,
    ringing,
    session_update,
)
from tests.calls.helpers import calls
from tests.conftest import make_settings
from tests.support import ADMIN, FakeClock


def worker_of(app: FastAPI, voice: FakeVoice, clock: FakeClock) -> CallbackWorker:
    """A worker of the app's database on the fake platform."""
    state: AppState = app.state.ct
    return CallbackWorker(
        sessionmaker=state.sessionmaker,
        provider=voice,
        settings=state.settings,
        clock=clock,
        base_url=BASE,
    )


async def test_a_late_success_of_an_earlier_attempt_completes_the_request_and_ends_the_newer_call(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    # The platform reports the agent's leg as busy: the round is over, a retry is due later.
    busy = await post_update(
        client, ring, session_update(ring.call_id, "busy", at=clock.now, ended=True)
    )
    assert busy.status_code == 200, busy.text
    assert (await ops(client, ring.callback_id))["status"] == "agent_unavailable"
    clock.advance(400)
    assert await worker_of(app, ring.voice, clock).run_once() == 1
    second = (await ops(client, ring.callback_id))["attempts_made"][1]
    assert second["status"] == "ringing_agent"
    # ...yet the first call had reached the customer after all.
    late = await post_dial(
        client, f"{ring.hooks}/dial-action", dial_body(ring.call_id, "completed", 25)
    )
    assert late.status_code == 200, late.text
    view = await ops(client, ring.callback_id)
    assert view["status"] == "completed"
    first, newer = view["attempts_made"]
    assert (first["status"], first["talk_seconds"]) == ("completed", 25)
    assert newer["status"] == "cancelled"
    assert ring.voice.hung_up == [second["provider_call_id"]]  # before it rings them again
    [call] = await calls(client)
    assert call["talk_seconds"] == 25


async def test_a_leg_that_ended_completed_without_an_answer_time_was_answered(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    # Ended with Cloudonix's "answer" status but no callAnswerTime.
    ended = await post_update(
        client, ring, session_update(ring.call_id, "answer", at=clock.now, ended=True)
    )
    assert ended.status_code == 200, ended.text
    view = await ops(client, ring.callback_id)
    # The agent talked: the customer's dial result is awaited, not the next agent called.
    assert view["status"] == "calling_customer", view
    assert view["attempts_made"][0]["status"] == "agent_answered"


class HeldVoice(FakeVoice):
    """A platform that takes its time answering originate, while the call already rings."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.asked = asyncio.Event()

    async def originate(self, request: Originate) -> CallInfo:
        self.asked.set()
        await asyncio.wait_for(self.release.wait(), 10)
        return await super().originate(request)


async def test_a_call_placed_for_a_request_cancelled_meanwhile_is_hung_up_at_once(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await callback_pool(client, agents=[AGENTS[0]])
    queued = await ask(client)
    voice = HeldVoice()
    worker = worker_of(app, voice, clock)
    step = asyncio.create_task(worker.run_once())
    await asyncio.wait_for(voice.asked.wait(), 10)
    cancel = await client.post(f"/v1/callbacks/{queued['callback_id']}/cancel", headers=ADMIN)
    assert cancel.status_code == 200, cancel.text
    voice.release.set()
    await asyncio.wait_for(step, 10)
    assert voice.hung_up == ["fakecall0001"]
    view = await ops(client, queued["callback_id"])
    assert view["status"] == "cancelled"
    assert view["attempts_made"][0]["status"] == "cancelled"
    assert view["attempts_made"][0]["provider_call_id"] == "fakecall0001"


async def test_a_phone_rung_the_hourly_limit_is_not_rung_again_before_the_hour_is_over(
    database_url: str, clock: FakeClock
) -> None:
    from app.main import create_app

    app = create_app(make_settings(database_url, callback_number_limit=1), clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30
        ) as client,
    ):
        ring = await ringing(app, client, clock)
        rung_at = clock.now
        await answered(client, ring, clock)
        busy = await post_dial(client, f"{ring.hooks}/dial-action", dial_body(ring.call_id, "busy"))
        assert busy.status_code == 200, busy.text
        assert (await ops(client, ring.callback_id))["status"] == "customer_unreachable"
        clock.advance(400)  # the retry is due, but the phone already rang once this hour
        worker = worker_of(app, ring.voice, clock)
        assert await worker.run_once() == 1
        assert len(ring.voice.placed) == 1
        view = await ops(client, ring.callback_id)
        assert view["status"] == "customer_unreachable"
        assert datetime.fromisoformat(view["next_attempt_at"]) == rung_at + timedelta(hours=1)
        assert "an hour allows" in view["last_error"]
        clock.now = datetime.fromisoformat(view["next_attempt_at"])
        assert await worker.run_once() == 1
        assert len(ring.voice.placed) == 2
        assert [o.destination for o in ring.voice.placed] == [AGENTS[0], AGENTS[0]]
        assert CUSTOMER in (ring.voice.placed[1].cxml or "")


def test_the_breaker_survives_a_weekend_of_failures() -> None:
    breaker = Breaker(rand=lambda: 0.5)
    for _ in range(5000):
        wait = breaker.failed(None)
    assert wait == MAX_PAUSE
    assert 0 < breaker.paused() <= MAX_PAUSE
    breaker.succeeded()
    assert breaker.failures == 0


async def test_a_leg_state_is_read_from_the_platform_when_no_update_came(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    answer_time = clock.now

    async def get_call(call_id: str) -> CallInfo:
        # The agent answered and talked for five minutes; the dial result never came.
        return CallInfo(
            call_id=call_id,
            state=CallState.COMPLETED,
            direction="outbound-api",
            answered_at=answer_time,
            ended_at=answer_time + timedelta(minutes=5),
        )

    ring.voice.get_call = get_call  # type: ignore[method-assign]
    clock.advance(3600)
    assert await worker_of(app, ring.voice, clock).run_once() == 1
    view = await ops(client, ring.callback_id)
    # A conversation that long reached the customer: no second call.
    assert view["status"] == "completed", view
    assert view["attempts_made"][0]["customer_status"] == "unverified"
    assert len(ring.voice.placed) == 1


async def test_an_agent_on_a_callback_is_not_rung_for_another(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)  # the pool's one agent is ringing for it
    other = await ask(client, "+12127778901")
    worker = worker_of(app, ring.voice, clock)
    assert await worker.run_once() == 1
    assert len(ring.voice.placed) == 1  # nobody was rung for the second request
    waiting = await ops(client, other["callback_id"])
    assert (waiting["status"], waiting["attempts"]) == ("queued", 0)
    assert waiting["attempts_made"] == []
    assert "every agent" in waiting["last_error"]
    assert datetime.fromisoformat(waiting["next_attempt_at"]) == clock.now + timedelta(seconds=2)
    # The first call ends; the agent is free again.
    await answered(client, ring, clock)
    done = await post_dial(
        client, f"{ring.hooks}/dial-action", dial_body(ring.call_id, "completed", 30)
    )
    assert done.status_code == 200, done.text
    clock.advance(15)
    assert await worker.run_once() == 1
    assert len(ring.voice.placed) == 2
    assert "+12127778901" in (ring.voice.placed[1].cxml or "")
    assert (await ops(client, other["callback_id"]))["status"] == "calling_agent"
