"""Bad input on the public endpoint: a clear problem naming the field, nothing stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.helpers import lease, make_pool
from tests.support import ADMIN


async def _stored(client: httpx.AsyncClient) -> tuple[int, int]:
    stats = (await client.get("/v1/pools/default/stats", headers=ADMIN)).json()
    return stats["leases_started"], stats["fallbacks_total"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"phone": "1212777890"}, "phone"),
        ({"phone": "call me"}, "phone"),
        ({"pool": "unknown"}, "pool"),
        ({"pool": "Not A Pool"}, "pool"),
        ({"session_id": "short"}, "session_id"),
        ({"context": {"ip": "999.1.1.1"}}, "context.ip"),
        ({"context": "nope"}, "context"),
        ({"context": {"utm_source": "x" * 300}}, "context.utm_source"),
        ({"fullname": 42}, "fullname"),
    ],
)
async def test_bad_field_is_a_422_problem_and_nothing_is_stored(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    await make_pool(client)
    response = await client.post("/get_tracking_number", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["field"] == field
    assert problem["detail"].startswith(field)
    assert await _stored(client) == (0, 0)


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"{not json", {"content-type": "application/json"}),
        (b"", {"content-type": "application/json"}),
        (b"[1, 2]", {"content-type": "application/json"}),
        (b"email=a%40b.com", {"content-type": "application/x-www-form-urlencoded"}),
    ],
)
async def test_body_that_is_not_a_json_object_is_a_problem(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str]
) -> None:
    await make_pool(client)
    response = await client.post("/get_tracking_number", content=content, headers=headers)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "body"
    assert await _stored(client) == (0, 0)


async def test_a_bad_request_does_not_disturb_a_held_lease(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    held = await lease(client)
    bad = await client.post(
        "/get_tracking_number", json={"session_id": held["session_id"], "email": "broken"}
    )
    assert bad.status_code == 422
    again = await lease(client, session_id=held["session_id"])
    assert again["phonenumber"] == held["phonenumber"]
    assert again["expires_at"] >= held["expires_at"]


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await client.get("/get_tracking_number")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == "application/problem+json"
