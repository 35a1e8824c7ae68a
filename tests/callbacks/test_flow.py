"""Callbacks end to end through the emulator over real HTTP, on both databases."""

from __future__ import annotations

import httpx

from tests.callbacks.helpers import (
    AGENTS,
    CONTEXT,
    CUSTOMER,
    ask,
    behave,
    callback_pool,
    calls_to,
    wait_for,
)
from tests.calls.helpers import calls
from tests.e2e.live import BOUND, live_service
from tests.support import FakeClock

FAST = {"callback_worker": True, "callback_poll_seconds": 0.05}


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
        [agent_leg] = await calls_to(client, AGENTS[0])
        [dial] = agent_leg["dials"]
        assert dial["number"] == CUSTOMER
        assert dial["caller_id"] == pool["fallback_number"]
        assert "google" in " ".join(agent_leg["said"])
        [call] = await calls(client)
        assert call["attribution"] == "callback"
        assert call["session_id"] == queued["session_id"]
        assert (call["source"], call["medium"], call["campaign"]) == ("google", "cpc", "brand")
        assert call["talk_seconds"] == 42
        assert call["from_number"] == CUSTOMER
        assert done["call_id"] == call["id"]
