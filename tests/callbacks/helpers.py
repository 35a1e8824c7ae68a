"""Shared steps of the callback tests: pools with agents, forms, polling, emulator scripts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tests.api.helpers import make_pool
from tests.support import ADMIN

AGENTS = ["+12125550111", "+12125550112"]
CUSTOMER = "+12127778900"
CONTEXT = {
    "landing_url": "https://shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=brand",
    "utm_source": "google",
    "utm_medium": "cpc",
    "utm_campaign": "brand",
}
FINAL = {"completed", "failed", "cancelled"}


async def callback_pool(
    client: httpx.AsyncClient, *, agents: list[str] | None = None, **options: Any
) -> dict[str, Any]:
    """A pool whose callbacks ring `agents` (default AGENTS)."""
    pool = await make_pool(client, size=1)
    changes = {"agents": AGENTS if agents is None else agents, **options}
    patched = await client.patch("/v1/pools/default", json=changes, headers=ADMIN)
    assert patched.status_code == 200, patched.text
    result: dict[str, Any] = patched.json()
    assert result["name"] == pool["name"]
    return result


async def ask(client: httpx.AsyncClient, phone: str = CUSTOMER, **body: Any) -> dict[str, Any]:
    """POST /callback; its JSON, asserting a 200."""
    answer = await client.post("/callback", json={"phone": phone, **body})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def ops(client: httpx.AsyncClient, callback_id: str) -> dict[str, Any]:
    """GET /v1/callbacks/{id}: the request with its attempts."""
    answer = await client.get(f"/v1/callbacks/{callback_id}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def wait_until(
    client: httpx.AsyncClient,
    callback_id: str,
    condition: Callable[[dict[str, Any]], bool],
    *,
    within: float = 30.0,
) -> dict[str, Any]:
    """Poll the ops view until `condition(view)` holds; that view."""
    async with asyncio.timeout(within):
        while True:
            # Polling: the request moves in the worker and the webhooks, which signal nothing.
            view = await ops(client, callback_id)
            if condition(view):
                return view
            await asyncio.sleep(0.05)


async def wait_for(
    client: httpx.AsyncClient, callback_id: str, *states: str, within: float = 30.0
) -> dict[str, Any]:
    """Poll the ops view until the request is in one of `states`; that view."""
    return await wait_until(client, callback_id, lambda v: v["status"] in states, within=within)


async def behave(client: httpx.AsyncClient, number: str, **script: Any) -> None:
    """Script how `number` behaves when the emulator dials it."""
    answer = await client.put(f"/emulator/behaviours/{number}", json=script)
    assert answer.status_code == 200, answer.text


async def calls_to(client: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    """Every emulated call placed to `number` (the agents' legs)."""
    answer = await client.get("/emulator/calls", params={"to": number})
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()
    return result


async def ended_calls_to(client: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    """The calls to `number`, once every one of them has ended."""
    async with asyncio.timeout(30):
        while True:
            found = await calls_to(client, number)
            if all(call["state"] == "ended" for call in found):
                return found
            await asyncio.sleep(0.05)
