"""Shared steps of the media spend tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import ADMIN


def row(day: str = "2026-11-20", source: str = "google", **fields: Any) -> dict[str, Any]:
    """A valid spend row; keyword arguments override or add fields."""
    return {"day": day, "source": source, "cost": "10.00", "currency": "USD", **fields}


async def import_rows(client: httpx.AsyncClient, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """POST /v1/spend and return its answer, asserting a 200."""
    response = await client.post("/v1/spend", json={"rows": rows}, headers=ADMIN)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def stored(
    client: httpx.AsyncClient,
    first: str = "2000-01-01",
    last: str = "2099-12-31",
    **params: Any,
) -> list[dict[str, Any]]:
    """Every stored row of the days first..last, following the cursors."""
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {"from": first, "to": last, **params}
    while True:
        response = await client.get("/v1/spend", params=query, headers=ADMIN)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        query["cursor"] = page["next_cursor"]
