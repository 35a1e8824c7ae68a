"""Shared steps of the API tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import ADMIN

DESTINATION = "+12125550100"
FALLBACK = "+12125550199"


def numbers(count: int, start: int = 101) -> list[str]:
    """Valid US numbers +1256555NNNN (fictional 555 exchange)."""
    return [f"+1256555{n:04d}" for n in range(start, start + count)]


async def make_pool(
    client: httpx.AsyncClient,
    name: str = "default",
    *,
    size: int = 3,
    start: int = 101,
    **overrides: Any,
) -> dict[str, Any]:
    """Create a pool with `size` numbers; returns the pool as stored."""
    body = {
        "name": name,
        "destination": DESTINATION,
        "fallback_number": FALLBACK,
        "lease_ttl_seconds": 1800,
        "cooldown_seconds": 900,
        **overrides,
    }
    created = await client.post("/v1/pools", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    if size:
        added = await client.post(
            f"/v1/pools/{name}/numbers", json={"numbers": numbers(size, start)}, headers=ADMIN
        )
        assert added.status_code == 201, added.text
    result: dict[str, Any] = created.json()
    return result


async def lease(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """POST /get_tracking_number and return its JSON, asserting a 200."""
    response = await client.post("/get_tracking_number", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
