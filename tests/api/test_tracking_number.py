"""POST /get_tracking_number: the tutorial's contract, leases, renewals, fallbacks."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx

from tests.api.helpers import FALLBACK, lease, make_pool, numbers
from tests.support import ADMIN, FakeClock

TUTORIAL = {"email": "myuser@mydomain.com", "phone": "12127778900", "fullname": "some name"}


async def test_tutorial_payload_gets_the_documented_answer(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=2)
    response = await client.post(
        "/get_tracking_number", json=TUTORIAL, headers={"accept": "application/json"}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "success"
    assert body["message"] == "ephemeral phone number assigned"
    assert body["phonenumber"] == "12565550101"
    assert body["tracked"] is True
    assert body["expires_at"].endswith("Z")
    assert len(body["session_id"]) >= 16


async def test_lease_lasts_the_pool_ttl(client: httpx.AsyncClient, clock: FakeClock) -> None:
    await make_pool(client, lease_ttl_seconds=600)
    body = await lease(client)
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert (expires - clock.now).total_seconds() == 600
    assert body["expires_in"] == 600
    clock.advance(100.5)
    renewed = await lease(client, session_id=body["session_id"])
    assert renewed["expires_in"] == 600  # renewed from now, by the service's clock


async def test_the_fallback_has_no_expiry(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=0)
    body = await lease(client)
    assert body["tracked"] is False
    assert (body["expires_at"], body["expires_in"]) == (None, None)


async def test_each_new_session_gets_a_different_number(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=3)
    got = [(await lease(client))["phonenumber"] for _ in range(3)]
    assert sorted(got) == ["12565550101", "12565550102", "12565550103"]


async def test_same_session_gets_same_number_and_lease_extended(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=3, lease_ttl_seconds=600)
    first = await lease(client)
    clock.advance(300)
    again = await lease(client, session_id=first["session_id"])
    assert again["phonenumber"] == first["phonenumber"]
    assert again["session_id"] == first["session_id"]
    assert again["expires_at"] > first["expires_at"]
    # The heartbeat kept the number: 500 s after the first lease's end it is still held.
    clock.advance(500)
    third = await lease(client, session_id=first["session_id"])
    assert third["phonenumber"] == first["phonenumber"]
    stats = (await client.get("/v1/pools/default/stats", headers=ADMIN)).json()
    assert stats["leases_started"] == 1
    assert stats["leased_now"] == 1


async def test_expired_session_gets_a_lease_again(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=2, lease_ttl_seconds=60, cooldown_seconds=0)
    first = await lease(client)
    clock.advance(61)
    again = await lease(client, session_id=first["session_id"])
    assert again["tracked"] is True
    assert again["session_id"] == first["session_id"]


async def test_released_number_rests_for_the_cooldown(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1, lease_ttl_seconds=60, cooldown_seconds=120)
    first = await lease(client)
    clock.advance(61)  # lease over, cooldown running
    resting = await lease(client)
    assert resting["tracked"] is False
    assert resting["fallback_reason"] == "pool_exhausted"
    clock.advance(120)  # cooldown over
    reused = await lease(client)
    assert reused["tracked"] is True
    assert reused["phonenumber"] == first["phonenumber"]


async def test_least_recently_released_number_goes_first(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=3, lease_ttl_seconds=60, cooldown_seconds=0)
    a = await lease(client)
    clock.advance(10)
    b = await lease(client)
    clock.advance(10)
    c = await lease(client)
    clock.advance(100)  # all released; a first, then b, then c
    order = [(await lease(client))["phonenumber"] for _ in range(3)]
    assert order == [a["phonenumber"], b["phonenumber"], c["phonenumber"]]


async def test_exhausted_pool_serves_fallback_with_200(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=1)
    assert (await lease(client))["tracked"] is True
    body = await lease(client)
    assert body == {
        "status": "success",
        "message": "fallback phone number assigned",
        "phonenumber": FALLBACK.lstrip("+"),
        "session_id": body["session_id"],
        "expires_at": None,
        "expires_in": None,
        "tracked": False,
        "fallback_reason": "pool_exhausted",
    }
    stats = (await client.get("/v1/pools/default/stats", headers=ADMIN)).json()
    assert stats["fallbacks_by_reason"] == {"pool_exhausted": 1}


async def test_pool_without_numbers_serves_fallback(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=0)
    body = await lease(client)
    assert body["tracked"] is False
    assert body["fallback_reason"] == "pool_empty"


async def test_bots_get_the_fallback_without_a_lease(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=2)
    response = await client.post(
        "/get_tracking_number",
        json={},
        headers={"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"},
    )
    body = response.json()
    assert body["tracked"] is False
    assert body["fallback_reason"] == "bot"
    assert body["session_id"] is None
    stats = (await client.get("/v1/pools/default/stats", headers=ADMIN)).json()
    assert stats["leased_now"] == 0
    assert stats["fallbacks_by_reason"] == {"bot": 1}


async def test_named_pool_is_used(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=1)
    await make_pool(client, "google-ads", size=1, start=500)
    body = await lease(client, pool="google-ads")
    assert body["phonenumber"] == numbers(1, 500)[0].lstrip("+")


async def test_context_and_prospect_are_stored_with_the_session(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client)
    context = {
        "landing_url": "https://shop.example/?utm_source=google",
        "referrer": "https://www.google.com/",
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "winter",
        "utm_term": "plumber",
        "utm_content": "ad-1",
        "gclid": "Cj0KCQ",
        "gbraid": "gb1",
        "wbraid": "wb1",
        "msclkid": "ms1",
        "fbclid": "fb1",
        "ga_client_id": "GA1.1.123.456",
    }
    body = await lease(client, **TUTORIAL, context=context)
    stored = (await client.get(f"/v1/sessions/{body['session_id']}", headers=ADMIN)).json()
    assert stored["prospect"] == {
        "email": "myuser@mydomain.com",
        "phone": "+12127778900",
        "fullname": "some name",
    }
    for key, value in context.items():
        assert stored["context"][key] == value
    assert stored["context"]["user_agent"].startswith("python-httpx")
    assert stored["context"]["ip_hash"] is None  # no CALLTRACK_IP_HASH_KEY: the IP is not kept
    assert [lease["number"] for lease in stored["leases"]] == ["+12565550101"]
    assert stored["leases"][0]["live"] is True


async def test_first_touch_context_wins_and_latest_prospect_wins(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client)
    first = await lease(client, context={"utm_source": "google"})
    sid = first["session_id"]
    await lease(
        client,
        session_id=sid,
        email="later@example.com",
        context={"utm_source": "bing", "utm_medium": "cpc"},
    )
    stored = (await client.get(f"/v1/sessions/{sid}", headers=ADMIN)).json()
    assert stored["context"]["utm_source"] == "google"
    assert stored["context"]["utm_medium"] == "cpc"
    assert stored["prospect"]["email"] == "later@example.com"


async def test_unknown_session_id_starts_a_new_session(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    body = await lease(client, session_id="x" * 24)
    assert body["tracked"] is True
    assert body["session_id"] != "x" * 24


async def test_sessions_are_kept_per_pool(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=1)
    await make_pool(client, "other", size=1, start=300)
    first = await lease(client)
    other = await lease(client, pool="other", session_id=first["session_id"])
    assert other["tracked"] is True
    assert other["phonenumber"] != first["phonenumber"]
    again = await lease(client, session_id=first["session_id"])
    assert again["phonenumber"] == first["phonenumber"]


async def test_concurrent_requests_of_one_session_share_one_number(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=5, lease_ttl_seconds=60, cooldown_seconds=0)
    first = await lease(client)
    clock.advance(61)  # the lease is over: every request below would claim a number
    answers = await asyncio.gather(
        *(lease(client, session_id=first["session_id"]) for _ in range(10))
    )
    assert len({a["phonenumber"] for a in answers}) == 1
    stats = (await client.get("/v1/pools/default/stats", headers=ADMIN)).json()
    assert stats["leased_now"] == 1
    assert stats["leases_started"] == 2
