"""Ops API: pools and numbers."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from tests.api.helpers import DESTINATION, FALLBACK, lease, make_pool, numbers
from tests.conftest import make_settings
from tests.support import ADMIN, FakeClock

POOL = {
    "name": "default",
    "destination": "+12125550100",
    "fallback_number": "+12125550100",
    "lease_ttl_seconds": 1800,
    "cooldown_seconds": 900,
}


async def test_create_get_list_and_patch_a_pool(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/pools", json=POOL, headers=ADMIN)
    assert created.status_code == 201
    assert created.json()["name"] == "default"
    assert created.json()["destination"] == "+12125550100"

    got = await client.get("/v1/pools/default", headers=ADMIN)
    assert got.json() == created.json()
    listed = await client.get("/v1/pools", headers=ADMIN)
    assert [p["name"] for p in listed.json()] == ["default"]

    patched = await client.patch(
        "/v1/pools/default",
        json={"lease_ttl_seconds": 600, "fallback_number": "(212) 555-0188"},
        headers=ADMIN,
    )
    assert patched.status_code == 200
    assert patched.json()["lease_ttl_seconds"] == 600
    assert patched.json()["fallback_number"] == "+12125550188"
    assert patched.json()["cooldown_seconds"] == 900


async def test_numbers_are_normalised_to_e164(client: httpx.AsyncClient) -> None:
    body = {**POOL, "destination": "(212) 555-0100", "fallback_number": "12125550100"}
    created = await client.post("/v1/pools", json=body, headers=ADMIN)
    assert created.json()["destination"] == "+12125550100"
    assert created.json()["fallback_number"] == "+12125550100"
    added = await client.post(
        "/v1/pools/default/numbers",
        json={"numbers": ["256-555-0101", "+44 20 7946 0958", "12565550102"]},
        headers=ADMIN,
    )
    assert added.status_code == 201
    assert added.json() == {"pool": "default", "added": 3, "reactivated": 0}


async def test_patch_changes_leases_granted_after_it(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=2, lease_ttl_seconds=1800)
    await client.patch("/v1/pools/default", json={"lease_ttl_seconds": 60}, headers=ADMIN)
    body = await lease(client)
    assert body["expires_at"].startswith("2026-11-26T12:01:00")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**POOL, "name": "Bad Name!"}, "name"),
        ({**POOL, "destination": "not a number"}, "destination"),
        ({**POOL, "fallback_number": "123"}, "fallback_number"),
        ({**POOL, "lease_ttl_seconds": 0}, "lease_ttl_seconds"),
        ({**POOL, "cooldown_seconds": -1}, "cooldown_seconds"),
        ({**POOL, "surprise": 1}, "surprise"),
        ({k: v for k, v in POOL.items() if k != "destination"}, "destination"),
    ],
)
async def test_bad_pool_is_refused_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await client.post("/v1/pools", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field
    assert field in response.json()["detail"]
    assert (await client.get("/v1/pools", headers=ADMIN)).json() == []


async def test_duplicate_pool_name_is_a_conflict(client: httpx.AsyncClient) -> None:
    await client.post("/v1/pools", json=POOL, headers=ADMIN)
    again = await client.post("/v1/pools", json=POOL, headers=ADMIN)
    assert again.status_code == 409
    assert again.json()["field"] == "name"


async def test_unknown_pool_is_404(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/v1/pools/nope"),
        ("PATCH", "/v1/pools/nope"),
        ("GET", "/v1/pools/nope/stats"),
        ("POST", "/v1/pools/nope/numbers"),
    ]:
        body = {"numbers": ["+12565550101"]} if method == "POST" else {}
        response = await client.request(method, path, json=body, headers=ADMIN)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


async def test_duplicates_within_a_request_add_nothing(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=0)
    response = await client.post(
        "/v1/pools/default/numbers",
        json={"numbers": ["+12565550101", "+12565550102", "256-555-0101"]},
        headers=ADMIN,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "numbers"
    assert response.json()["duplicates"] == ["+12565550101"]
    stats = (await client.get("/v1/pools/default/stats", headers=ADMIN)).json()
    assert stats["size"] == 0


async def test_numbers_of_another_pool_are_refused_and_nothing_is_half_added(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client, "first", size=2)
    await make_pool(client, "second", size=0)
    response = await client.post(
        "/v1/pools/second/numbers",
        json={"numbers": ["+12565559999", "+12565550102"]},
        headers=ADMIN,
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["duplicates"] == [{"number": "+12565550102", "pool": "first"}]
    assert "+12565550102" in response.json()["detail"]
    second = (await client.get("/v1/pools/second/stats", headers=ADMIN)).json()
    assert second["size"] == 0


async def test_one_invalid_number_adds_nothing(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=0)
    response = await client.post(
        "/v1/pools/default/numbers",
        json={"numbers": ["+12565550101", "12"]},
        headers=ADMIN,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "numbers[1]"
    assert (await client.get("/v1/pools/default/stats", headers=ADMIN)).json()["size"] == 0


async def test_retired_number_finishes_its_lease_then_leaves(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1, lease_ttl_seconds=60, cooldown_seconds=0)
    held = await lease(client)
    gone = await client.delete("/v1/pools/default/numbers/+12565550101", headers=ADMIN)
    assert gone.status_code == 204
    # The holder keeps it until its lease ends, but the heartbeat no longer extends it.
    clock.advance(30)
    again = await lease(client, session_id=held["session_id"])
    assert again["phonenumber"] == held["phonenumber"]
    assert again["expires_at"] == held["expires_at"]
    clock.advance(31)
    after = await lease(client, session_id=held["session_id"])
    assert after["tracked"] is False
    assert after["fallback_reason"] == "pool_empty"
    missing = await client.delete("/v1/pools/default/numbers/+12565550101", headers=ADMIN)
    assert missing.status_code == 404


async def test_retired_number_can_be_added_again(client: httpx.AsyncClient) -> None:
    await make_pool(client, "first", size=1)
    await make_pool(client, "second", size=0)
    await client.delete("/v1/pools/first/numbers/+12565550101", headers=ADMIN)
    added = await client.post(
        "/v1/pools/second/numbers", json={"numbers": ["+12565550101"]}, headers=ADMIN
    )
    assert added.status_code == 201
    assert added.json() == {"pool": "second", "added": 0, "reactivated": 1}
    body = await lease(client, pool="second")
    assert body["phonenumber"] == "12565550101"


async def test_stats_report_utilisation_fallbacks_and_peak(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=4, lease_ttl_seconds=60, cooldown_seconds=0)
    for _ in range(3):
        await lease(client)
    clock.advance(61)  # all three expire
    await lease(client)
    await lease(client, pool="default")
    stats = (await client.get("/v1/pools/default/stats", headers=ADMIN)).json()
    assert stats["size"] == 4
    assert stats["leased_now"] == 2
    assert stats["utilisation"] == 0.5
    assert stats["leases_started"] == 5
    assert stats["peak_concurrent_leases"] == 3
    assert stats["peak_utilisation"] == 0.75
    for _ in range(3):
        await lease(client)
    stats = (await client.get("/v1/pools/default/stats", headers=ADMIN)).json()
    assert stats["fallbacks_total"] == 1
    assert stats["fallbacks_by_reason"] == {"pool_exhausted": 1}
    assert stats["peak_concurrent_leases"] == 4
    narrow = await client.get("/v1/pools/default/stats?window_seconds=60", headers=ADMIN)
    assert narrow.json()["leases_started"] == 4
    bad = await client.get("/v1/pools/default/stats?window_seconds=5", headers=ADMIN)
    assert bad.status_code == 422
    assert bad.json()["field"] == "query.window_seconds"


async def test_ops_api_needs_the_admin_token(client: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": "Basic abc"},
    ):
        response = await client.get("/v1/pools", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_without_admin_token_the_ops_api_refuses_everything(
    database_url: str, clock: FakeClock
) -> None:
    app: FastAPI = create_app(make_settings(database_url, admin_token=None), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for headers in ({}, ADMIN):
                response = await client.post("/v1/pools", json=POOL, headers=headers)
                assert response.status_code == 503
                assert "CALLTRACK_ADMIN_TOKEN" in response.json()["detail"]
            # The public endpoint still works without the ops API.
            public = await client.post("/get_tracking_number", json={})
            assert public.status_code == 422
            assert public.json()["field"] == "pool"


def test_helpers_numbers_are_valid() -> None:
    from app.services.phone import to_e164

    for raw in [*numbers(3), DESTINATION, FALLBACK]:
        assert to_e164(raw, region="US") == raw


async def test_match_window_defaults_to_the_cooldown_up_to_15_minutes(
    client: httpx.AsyncClient,
) -> None:
    short = await make_pool(client, "short", size=0, cooldown_seconds=120)
    assert short["match_window_seconds"] == 120
    long = await make_pool(client, "long", size=0, cooldown_seconds=3600)
    assert long["match_window_seconds"] == 900
    assert (long["whisper"], long["record_calls"], long["source"]) == (False, False, None)


async def test_match_window_may_not_outlast_the_cooldown(client: httpx.AsyncClient) -> None:
    body = {
        "name": "bad",
        "destination": "+12125550100",
        "fallback_number": "+12125550100",
        "cooldown_seconds": 60,
        "match_window_seconds": 61,
    }
    refused = await client.post("/v1/pools", json=body, headers=ADMIN)
    assert refused.status_code == 422
    assert refused.json()["field"] == "match_window_seconds"
    await make_pool(client, "ok", size=0, cooldown_seconds=600, match_window_seconds=600)
    lower = await client.patch("/v1/pools/ok", json={"cooldown_seconds": 300}, headers=ADMIN)
    assert lower.status_code == 422
    assert lower.json()["field"] == "cooldown_seconds"
    wider = await client.patch("/v1/pools/ok", json={"match_window_seconds": 601}, headers=ADMIN)
    assert wider.status_code == 422
    assert wider.json()["field"] == "match_window_seconds"
    both = await client.patch(
        "/v1/pools/ok", json={"cooldown_seconds": 300, "match_window_seconds": 300}, headers=ADMIN
    )
    assert both.status_code == 200
    assert (both.json()["cooldown_seconds"], both.json()["match_window_seconds"]) == (300, 300)


async def test_static_source_and_call_options_can_be_set_and_cleared(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client, "radio", size=0, source="radio", medium="offline", campaign="fall")
    patched = await client.patch(
        "/v1/pools/radio",
        json={"whisper": True, "record_calls": True, "campaign": None},
        headers=ADMIN,
    )
    assert patched.status_code == 200
    pool = patched.json()
    assert (pool["whisper"], pool["record_calls"]) == (True, True)
    assert (pool["source"], pool["medium"], pool["campaign"]) == ("radio", "offline", None)
