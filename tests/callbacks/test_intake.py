"""Taking callback requests in: validation, allowed numbers, limits, dedupe, sessions, hours."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import phonenumbers
import pytest
from fastapi import FastAPI

from app.main import create_app
from tests.api.helpers import lease
from tests.callbacks.helpers import CONTEXT, CUSTOMER, ask, callback_pool, ops
from tests.conftest import make_settings
from tests.support import ADMIN, FakeClock

LONDON = "+44 20 7946 0000"  # a valid GB fixed line (Ofcom's drama range)
LONDON_E164 = "+442079460000"
PREMIUM = "+1 900 234 5678"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
NEW_YORK_HOURS = {
    "timezone": "America/New_York",
    "weekly": {day: [["09:00", "17:00"]] for day in WEEKDAYS},
}
PUBLIC_FIELDS = {
    "callback_id",
    "state",
    "scheduled_for",
    "next_attempt_at",
    "attempts",
    "created_at",
    "updated_at",
    "ended_at",
}


@asynccontextmanager
async def serve(
    database_url: str, clock: FakeClock, peer: str = "198.51.100.1", **overrides: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with particular settings and a client connecting from `peer`."""
    app = create_app(make_settings(database_url, **overrides), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(peer, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client


async def listed(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    """GET /v1/callbacks items."""
    answer = await client.get("/v1/callbacks", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def assert_problem(answer: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    """The answer is an RFC 9457 problem of `status` naming `field` (None: no field)."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == status
    assert problem.get("field") == field
    return problem


def test_the_numbers_used_here_are_what_the_tests_say() -> None:
    premium = phonenumbers.parse(PREMIUM, None)
    assert phonenumbers.is_valid_number(premium)
    assert phonenumbers.number_type(premium) == phonenumbers.PhoneNumberType.PREMIUM_RATE
    london = phonenumbers.parse(LONDON, None)
    assert phonenumbers.is_valid_number(london)
    assert phonenumbers.region_code_for_number(london) == "GB"
    customer = phonenumbers.parse(CUSTOMER, None)
    assert phonenumbers.number_type(customer) in {
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "phone"),
        ({"phone": ""}, "phone"),
        ({"phone": "   "}, "phone"),
        ({"phone": "call me"}, "phone"),
        ({"phone": "1212777890"}, "phone"),
        ({"phone": "+1 212 555"}, "phone"),
        ({"phone": "1" * 33}, "phone"),
        ({"phone": LONDON}, "phone"),
        ({"phone": PREMIUM}, "phone"),
        ({"phone": CUSTOMER, "pool": "unknown"}, "pool"),
        ({"phone": CUSTOMER, "pool": "Not A Pool"}, "pool"),
        ({"phone": CUSTOMER, "email": "not-an-email"}, "email"),
        ({"phone": CUSTOMER, "session_id": "short"}, "session_id"),
        ({"phone": CUSTOMER, "context": {"ip": "999.1.1.1"}}, "context.ip"),
    ],
)
async def test_a_refused_request_is_a_422_problem_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    await callback_pool(client)
    answer = await client.post("/callback", json=body)
    problem = assert_problem(answer, 422, field)
    assert problem["detail"].startswith(field)
    assert await listed(client) == []


async def test_countries_outside_the_default_are_refused_until_the_pool_allows_them(
    client: httpx.AsyncClient,
) -> None:
    pool = await callback_pool(client)
    assert pool["callback_countries"] is None
    refused = await client.post("/callback", json={"phone": LONDON})
    problem = assert_problem(refused, 422, "phone")
    assert "GB" in problem["detail"]
    assert "US" in problem["detail"]  # says what is allowed
    assert await listed(client) == []

    patched = await client.patch(
        "/v1/pools/default", json={"callback_countries": ["US", "GB"]}, headers=ADMIN
    )
    assert patched.status_code == 200, patched.text
    assert sorted(patched.json()["callback_countries"]) == ["GB", "US"]
    queued = await ask(client, LONDON)
    assert queued["state"] == "queued"
    view = await ops(client, queued["callback_id"])
    assert view["phone"] == LONDON_E164
    # Home numbers are still allowed; premium ones still are not.
    assert (await client.post("/callback", json={"phone": CUSTOMER})).status_code == 200
    assert_problem(await client.post("/callback", json={"phone": PREMIUM}), 422, "phone")
    assert len(await listed(client)) == 2


async def test_a_pool_limited_to_another_country_refuses_home_numbers(
    client: httpx.AsyncClient,
) -> None:
    await callback_pool(client, callback_countries=["GB"])
    assert_problem(await client.post("/callback", json={"phone": CUSTOMER}), 422, "phone")
    assert (await ask(client, LONDON))["state"] == "queued"
    assert [item["phone"] for item in await listed(client)] == [LONDON_E164]


async def test_premium_rate_numbers_are_refused_whatever_the_countries(
    client: httpx.AsyncClient,
) -> None:
    await callback_pool(client, callback_countries=["US"])
    problem = assert_problem(await client.post("/callback", json={"phone": PREMIUM}), 422, "phone")
    assert "premium" in problem["detail"]
    assert await listed(client) == []


async def test_the_same_number_while_pending_gets_the_same_request(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await callback_pool(client)
    first = await ask(client, CUSTOMER)
    clock.advance(30)
    # The same number, written another way.
    second = await ask(client, "(212) 777-8900", fullname="Someone Else")
    third = await ask(client, "12127778900")
    assert second["callback_id"] == third["callback_id"] == first["callback_id"]
    # Another form never learns the first visit's session id...
    assert second["session_id"] is None
    assert third["session_id"] is None
    # ...while the visit that asked gets its own back.
    again = await ask(client, CUSTOMER, session_id=first["session_id"])
    assert (again["callback_id"], again["session_id"]) == (
        first["callback_id"],
        first["session_id"],
    )
    assert second["scheduled_for"] == first["scheduled_for"]
    items = await listed(client)
    assert [item["id"] for item in items] == [first["callback_id"]]
    assert items[0]["phone"] == CUSTOMER
    assert items[0]["created_at"] == first["scheduled_for"]  # not moved by the repeats


async def test_per_number_limit_answers_429_with_retry_after_until_the_hour_has_passed(
    database_url: str, clock: FakeClock
) -> None:
    start = clock.now
    async with serve(database_url, clock, callback_number_limit=3) as (_, client):
        await callback_pool(client)
        for _ in range(3):
            queued = await ask(client, CUSTOMER)
            cancelled = await client.post(
                f"/v1/callbacks/{queued['callback_id']}/cancel", headers=ADMIN
            )
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"
            clock.advance(10)
        assert clock.now == start + timedelta(seconds=30)
        limited = await client.post("/callback", json={"phone": CUSTOMER})
        problem = assert_problem(limited, 429, "phone")
        # The oldest of the three (at `start`) leaves the hour at start + 3600 s.
        assert limited.headers["retry-after"] == "3571"
        assert problem["retry_after"] == 3571
        assert len(await listed(client)) == 3
        # Another number is not affected.
        other = await ask(client, "+12127778901")
        await client.post(f"/v1/callbacks/{other['callback_id']}/cancel", headers=ADMIN)

        clock.now = start + timedelta(hours=1)
        # Exactly an hour after the first: it still counts.
        assert_problem(await client.post("/callback", json={"phone": CUSTOMER}), 429, "phone")
        clock.advance(1)
        accepted = await ask(client, CUSTOMER)
        assert accepted["state"] == "queued"
        assert len(await listed(client, status="queued")) == 1


async def test_per_visitor_limit_refuses_the_third_request_of_an_ip(
    database_url: str, clock: FakeClock
) -> None:
    async with serve(database_url, clock, peer="198.51.100.23", callback_rate_limit="2/hour") as (
        app,
        client,
    ):
        await callback_pool(client)
        first = await ask(client, "+12127778901")
        await ask(client, "+12127778902")
        limited = await client.post("/callback", json={"phone": "+12127778903"})
        problem = assert_problem(limited, 429, None)
        assert problem["type"] == "urn:calltrack:problem:rate-limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 3600
        assert len(await listed(client)) == 2
        # The page may still follow its request.
        assert (await client.get(f"/callback/{first['callback_id']}")).status_code == 200
        # Another visitor is counted on its own.
        transport = httpx.ASGITransport(app=app, client=("198.51.100.24", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as other:
            assert (await ask(other, "+12127778903"))["state"] == "queued"
        assert len(await listed(client)) == 3


async def test_the_public_state_has_no_personal_data(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await callback_pool(client)
    queued = await ask(
        client, CUSTOMER, email="Jane.Doe@Example.com", fullname="Jane Doe", context=CONTEXT
    )
    answer = await client.get(f"/callback/{queued['callback_id']}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    state = answer.json()
    assert set(state) == PUBLIC_FIELDS
    assert state["callback_id"] == queued["callback_id"]
    assert state["state"] == "queued"
    assert state["attempts"] == 0
    assert state["ended_at"] is None
    assert datetime.fromisoformat(state["scheduled_for"]) == clock.now
    assert datetime.fromisoformat(state["next_attempt_at"]) == clock.now
    # The id itself is random text: leave it out of the search.
    text = answer.text.replace(queued["callback_id"], "").lower()
    for personal in ("2127778900", "jane", "doe", "example.com", "google", queued["session_id"]):
        assert personal.lower() not in text, personal


async def test_unknown_and_malformed_callback_ids(client: httpx.AsyncClient) -> None:
    await callback_pool(client)
    missing = await client.get("/callback/cb_" + "A" * 22)
    assert_problem(missing, 404, "callback_id")
    for bad in ("nope", "cb_short", "cb_" + "A" * 23, "xx_" + "A" * 22, "cb_" + "A" * 21 + "!"):
        malformed = await client.get(f"/callback/{bad}")
        assert malformed.status_code == 422, bad
        assert malformed.headers["content-type"] == "application/problem+json"
        assert malformed.json()["field"].endswith("callback_id")


async def test_a_session_from_the_tracking_number_is_joined(client: httpx.AsyncClient) -> None:
    await callback_pool(client)
    leased = await lease(client, context=CONTEXT)
    session_id = leased["session_id"]
    assert session_id
    queued = await ask(
        client,
        CUSTOMER,
        session_id=session_id,
        email="Jane.Doe@Example.COM",
        fullname="Jane Doe",
        # The visit's first context stays; a later page's does not overwrite it.
        context={"utm_source": "bing", "utm_medium": "organic"},
    )
    assert queued["session_id"] == session_id
    assert (await ops(client, queued["callback_id"]))["session_id"] == session_id
    answer = await client.get(f"/v1/sessions/{session_id}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    session = answer.json()
    assert session["prospect"] == {
        "phone": CUSTOMER,
        "email": "jane.doe@example.com",
        "fullname": "Jane Doe",
    }
    assert session["context"]["utm_source"] == "google"
    assert session["context"]["utm_medium"] == "cpc"
    assert session["context"]["utm_campaign"] == "brand"
    assert len(session["leases"]) == 1


async def test_an_unknown_session_starts_a_new_one(client: httpx.AsyncClient) -> None:
    await callback_pool(client)
    unknown = "unknown-session-0123456789"
    queued = await ask(client, CUSTOMER, session_id=unknown, context=CONTEXT)
    assert queued["session_id"] is not None
    assert queued["session_id"] != unknown
    assert (await client.get(f"/v1/sessions/{unknown}", headers=ADMIN)).status_code == 404
    answer = await client.get(f"/v1/sessions/{queued['session_id']}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    session = answer.json()
    assert session["prospect"]["phone"] == CUSTOMER
    assert session["context"]["utm_source"] == "google"
    assert session["leases"] == []


async def test_without_a_session_a_new_one_is_started_per_request(
    client: httpx.AsyncClient,
) -> None:
    await callback_pool(client)
    first = await ask(client, "+12127778901")
    second = await ask(client, "+12127778902")
    assert first["session_id"]
    assert second["session_id"]
    assert first["session_id"] != second["session_id"]


@pytest.mark.parametrize(
    ("now", "state", "scheduled_for"),
    [
        # Saturday: Monday 30 November 09:00 in New York (EST, UTC-5).
        (datetime(2026, 11, 28, 15, 0, tzinfo=UTC), "scheduled", "2026-11-30T14:00:00Z"),
        # Wednesday 10:00 in New York: open, due now.
        (datetime(2026, 11, 25, 15, 0, tzinfo=UTC), "queued", "2026-11-25T15:00:00Z"),
        # Wednesday 08:59 in New York: that morning at 09:00.
        (datetime(2026, 11, 25, 13, 59, tzinfo=UTC), "scheduled", "2026-11-25T14:00:00Z"),
        # Friday 17:00 in New York: the interval is [09:00, 17:00), so Monday.
        (datetime(2026, 11, 27, 22, 0, tzinfo=UTC), "scheduled", "2026-11-30T14:00:00Z"),
        # Friday 16:59:59 in New York: still open.
        (datetime(2026, 11, 27, 21, 59, 59, tzinfo=UTC), "queued", "2026-11-27T21:59:59Z"),
    ],
)
async def test_off_hours_requests_are_scheduled_for_the_next_opening(
    client: httpx.AsyncClient, clock: FakeClock, now: datetime, state: str, scheduled_for: str
) -> None:
    await callback_pool(client, business_hours=NEW_YORK_HOURS)
    clock.now = now
    queued = await ask(client, CUSTOMER)
    assert queued["state"] == state
    assert queued["scheduled_for"] == scheduled_for
    public = (await client.get(f"/callback/{queued['callback_id']}")).json()
    assert public["state"] == state
    assert public["scheduled_for"] == scheduled_for
    assert public["next_attempt_at"] == scheduled_for
    view = await ops(client, queued["callback_id"])
    assert view["next_attempt_at"] == scheduled_for
    assert datetime.fromisoformat(view["created_at"]) == now
    # The request lives its maximum age (4 h by default) from the opening, not from now.
    expires = datetime.fromisoformat(view["expires_at"]) - datetime.fromisoformat(scheduled_for)
    assert expires.total_seconds() == 4 * 3600


async def test_concurrent_forms_for_one_number_share_one_request(
    client: httpx.AsyncClient,
) -> None:
    await callback_pool(client)
    answers = await asyncio.gather(
        *(client.post("/callback", json={"phone": CUSTOMER}) for _ in range(5))
    )
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    ids = {a.json()["callback_id"] for a in answers}
    assert len(ids) == 1
    assert [item["id"] for item in await listed(client)] == list(ids)
