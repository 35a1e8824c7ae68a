"""Callbacks end to end through the emulator over real HTTP, on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.callbacks.helpers import (
    AGENTS,
    CONTEXT,
    CUSTOMER,
    ask,
    behave,
    callback_pool,
    calls_to,
    ended_calls_to,
    ops,
    wait_for,
    wait_until,
)
from tests.calls.helpers import calls
from tests.e2e.live import BOUND, live_service
from tests.support import FakeClock

FAST = {"callback_worker": True, "callback_poll_seconds": 0.05}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


async def test_the_agent_answers_and_the_customer_is_bridged(
    database_url: str, clock: FakeClock
) -> None:
    async with (
        live_service(database_url, clock, **FAST) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        pool = await callback_pool(client)
        await behave(client, AGENTS[0], answer_after=3)
        await behave(client, CUSTOMER, answer_after=5, talk=42)
        queued = await ask(client, context=CONTEXT)
        assert queued["status"] == "success"
        assert queued["message"] == "Callback request queued, please wait..."
        assert queued["state"] == "queued"
        done = await wait_for(client, queued["callback_id"], "completed", "failed")
        assert done["status"] == "completed", done
        [attempt] = done["attempts_made"]
        assert attempt["agent"] == AGENTS[0]
        assert attempt["status"] == "completed"
        assert attempt["talk_seconds"] == 42
        [agent_leg] = await ended_calls_to(client, AGENTS[0])
        [dial] = agent_leg["dials"]
        assert dial["number"] == CUSTOMER
        assert dial["caller_id"] == pool["fallback_number"]
        assert "google" in " ".join(agent_leg["said"])
        async with asyncio.timeout(BOUND):
            # Polling: the agent leg's CDR comes from the emulator, which signals nothing.
            while (await calls(client))[0]["disposition"] is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        [call] = await calls(client)
        assert call["disposition"] == "ANSWER"
        # The customer's leg, not the agent's (which the CDR describes), sets these.
        assert call["started_at"] <= call["answered_at"] <= call["ended_at"]
        assert call["attribution"] == "callback"
        assert call["session_id"] == queued["session_id"]
        assert (call["source"], call["medium"], call["campaign"]) == ("google", "cpc", "brand")
        assert call["talk_seconds"] == 42
        assert call["from_number"] == CUSTOMER
        assert done["call_id"] == call["id"]


async def test_a_busy_agent_passes_the_call_to_the_next_one(
    database_url: str, clock: FakeClock
) -> None:
    async with (
        live_service(database_url, clock, **FAST) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await callback_pool(client)
        await behave(client, AGENTS[0], outcome="busy", answer_after=1)
        await behave(client, AGENTS[1], answer_after=2)
        await behave(client, CUSTOMER, answer_after=1, talk=20)
        queued = await ask(client)
        done = await wait_for(client, queued["callback_id"], "completed", "failed")
        assert done["status"] == "completed", done
        assert done["attempts"] == 1  # one round, two agents
        first, second = done["attempts_made"]
        assert (first["agent"], first["status"]) == (AGENTS[0], "agent_unavailable")
        assert (second["agent"], second["status"]) == (AGENTS[1], "completed")
        assert first["round"] == second["round"] == 1
        assert [leg["dials"] for leg in await calls_to(client, AGENTS[0])] == [[]]
        [answered] = await calls_to(client, AGENTS[1])
        assert [d["number"] for d in answered["dials"]] == [CUSTOMER]


async def test_when_no_agent_answers_the_round_is_retried_later(
    database_url: str, clock: FakeClock
) -> None:
    async with (
        live_service(database_url, clock, **FAST) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await callback_pool(client)
        for agent in AGENTS:
            await behave(client, agent, outcome="no-answer")
        queued = await ask(client)
        await wait_until(
            client,
            queued["callback_id"],
            lambda v: len(v["attempts_made"]) == 2 and v["claimed_by"] is None,
        )
        await asyncio.sleep(0.3)  # a worker that ignored the backoff would call again now
        waiting = await ops(client, queued["callback_id"])
        assert waiting["status"] == "agent_unavailable", waiting
        assert [a["status"] for a in waiting["attempts_made"]] == ["agent_unavailable"] * 2
        due = datetime.fromisoformat(waiting["next_attempt_at"])
        # The default backoff starts at 300 s, jittered by +-20%.
        assert timedelta(seconds=240) <= due - clock.now <= timedelta(seconds=360)
        assert waiting["last_error"].startswith("no agent answered")

        await behave(client, AGENTS[0], answer_after=1)
        clock.advance(400)
        done = await wait_for(client, queued["callback_id"], "completed", "failed")
        assert done["status"] == "completed", done
        assert done["attempts"] == 2
        assert [a["status"] for a in done["attempts_made"]] == [
            "agent_unavailable",
            "agent_unavailable",
            "completed",
        ]
        assert len(await calls_to(client, AGENTS[0])) == 2
        assert len(await calls_to(client, AGENTS[1])) == 1


async def test_a_customer_who_does_not_answer_is_retried_then_given_up_on(
    database_url: str, clock: FakeClock
) -> None:
    settings = {**FAST, "callback_max_attempts": 2}
    async with (
        live_service(database_url, clock, **settings) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await callback_pool(client)
        await behave(client, AGENTS[0], answer_after=1)
        await behave(client, CUSTOMER, outcome="no-answer")
        queued = await ask(client)
        waiting = await wait_for(client, queued["callback_id"], "customer_unreachable", "failed")
        assert waiting["status"] == "customer_unreachable", waiting
        [attempt] = waiting["attempts_made"]
        assert attempt["status"] == "customer_unreachable"
        assert attempt["customer_status"] == "no-answer"
        assert datetime.fromisoformat(waiting["next_attempt_at"]) > clock.now
        [leg] = await ended_calls_to(client, AGENTS[0])
        assert any("try again later" in said for said in leg["said"]), leg

        clock.advance(1000)
        failed = await wait_for(client, queued["callback_id"], "failed", "completed")
        assert failed["status"] == "failed"
        assert failed["attempts"] == 2
        assert "2 attempts" in failed["last_error"]
        assert failed["ended_at"] is not None
        assert len(await calls_to(client, AGENTS[0])) == 2
        assert await calls(client) == []  # nobody talked: no call to report
        public = (await client.get(f"/callback/{queued['callback_id']}")).json()
        assert public["state"] == "failed"
        assert public["next_attempt_at"] is None


async def test_off_hours_requests_wait_for_the_next_opening(database_url: str) -> None:
    saturday = FakeClock(datetime(2026, 11, 28, 15, 0, tzinfo=UTC))
    hours = {"timezone": "America/New_York", "weekly": {d: [["09:00", "17:00"]] for d in WEEKDAYS}}
    async with (
        live_service(database_url, saturday, **FAST) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await callback_pool(client, business_hours=hours)
        await behave(client, AGENTS[0], answer_after=1)
        queued = await ask(client)
        assert queued["state"] == "scheduled"
        # Monday 30 November, 09:00 in New York (EST, UTC-5).
        assert queued["scheduled_for"] == "2026-11-30T14:00:00Z"
        await asyncio.sleep(0.3)
        assert await calls_to(client, AGENTS[0]) == []
        assert (await ops(client, queued["callback_id"]))["status"] == "scheduled"

        saturday.now = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
        done = await wait_for(client, queued["callback_id"], "completed", "failed")
        assert done["status"] == "completed", done
        assert len(await calls_to(client, AGENTS[0])) == 1


async def test_platform_429_and_5xx_do_not_use_up_attempts(
    database_url: str, clock: FakeClock
) -> None:
    # One try per originate: the worker, not the adapter's own retries, meets the faults.
    settings = {**FAST, "cloudonix_max_attempts": 1}
    async with (
        live_service(database_url, clock, **settings) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await callback_pool(client)
        await behave(client, AGENTS[0], answer_after=1)
        faults = [{"status": 429, "retry_after": 2}, {"status": 503}]
        assert (await client.put("/emulator/faults", json={"originate": faults})).is_success
        queued = await ask(client)
        cid = queued["callback_id"]

        async def seen(count: int) -> dict[str, Any]:
            async with asyncio.timeout(BOUND):
                while True:
                    view = await ops(client, cid)
                    if len(view["attempts_made"]) >= count and view["claimed_by"] is None:
                        return view
                    await asyncio.sleep(0.05)

        first = await seen(1)
        assert first["status"] == "queued"
        assert first["attempts"] == 0
        assert first["attempts_made"][0]["status"] == "not_placed"
        assert "429" in first["last_error"]
        # Retry-After: 2 is honoured at least.
        assert datetime.fromisoformat(first["next_attempt_at"]) >= clock.now + timedelta(seconds=2)
        clock.advance(60)
        second = await seen(2)
        assert second["attempts_made"][1]["status"] == "not_placed"
        assert second["attempts"] == 0
        clock.advance(60)
        done = await wait_for(client, cid, "completed", "failed")
        assert done["status"] == "completed", done
        assert done["attempts"] == 1
        assert [a["status"] for a in done["attempts_made"]] == [
            "not_placed",
            "not_placed",
            "completed",
        ]
        assert len(await calls_to(client, AGENTS[0])) == 1


async def test_repeated_platform_failures_pause_the_whole_worker(
    database_url: str, clock: FakeClock
) -> None:
    settings = {**FAST, "cloudonix_max_attempts": 1}
    async with (
        live_service(database_url, clock, **settings) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await callback_pool(client)
        faults = [{"status": 503}] * 3
        assert (await client.put("/emulator/faults", json={"originate": faults})).is_success
        queued = await ask(client)
        async with asyncio.timeout(BOUND):
            while (await client.get("/emulator/faults")).json()["originate_seen"] < 3:
                clock.advance(30)  # every retry falls due at once...
                await asyncio.sleep(0.05)
        # ...yet after three failures in a row the worker stops asking for a while.
        clock.advance(30)
        await asyncio.sleep(1.0)
        assert (await client.get("/emulator/faults")).json()["originate_seen"] == 3
        view = await ops(client, queued["callback_id"])
        assert view["attempts"] == 0
        assert view["status"] == "queued"
        # The pause ends on its own (5 s, jittered to at most 7.5 s).
        done = await wait_for(client, queued["callback_id"], "completed", "failed", within=15)
        assert done["status"] == "completed"
