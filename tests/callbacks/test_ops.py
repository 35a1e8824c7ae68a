"""The ops API of callbacks: listing with filters and cursors, details, cancelling."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.helpers import make_pool
from tests.callbacks.helpers import (
    AGENTS,
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
from tests.e2e.live import BOUND, live_service
from tests.support import ADMIN, FakeClock

FAST = {"callback_worker": True, "callback_poll_seconds": 0.05}
PHONES = [f"+1212777890{n}" for n in range(5)]


def z(at: datetime) -> str:
    """A UTC time as the API writes it."""
    return at.isoformat().replace("+00:00", "Z")


async def page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    """GET /v1/callbacks; its JSON, asserting a 200."""
    answer = await client.get("/v1/callbacks", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    """The ids of one page."""
    return [item["id"] for item in (await page(client, **params))["items"]]


async def cancel(client: httpx.AsyncClient, callback_id: str) -> httpx.Response:
    """POST /v1/callbacks/{id}/cancel."""
    return await client.post(f"/v1/callbacks/{callback_id}/cancel", headers=ADMIN)


async def five(client: httpx.AsyncClient, clock: FakeClock) -> tuple[list[str], list[datetime]]:
    """Five requests a minute apart, oldest first: their ids and creation times."""
    made, times = [], []
    for phone in PHONES:
        made.append((await ask(client, phone))["callback_id"])
        times.append(clock.now)
        clock.advance(60)
    return made, times


async def test_the_list_is_newest_first_with_everything_ops_needs(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await callback_pool(client)
    made, times = await five(client, clock)
    listing = await page(client)
    assert listing["next_cursor"] is None
    assert [item["id"] for item in listing["items"]] == made[::-1]
    newest = listing["items"][0]
    assert newest["phone"] == PHONES[-1]
    assert newest["pool"] == "default"
    assert newest["status"] == "queued"
    assert newest["attempts"] == 0
    assert newest["created_at"] == z(times[-1])
    assert newest["ended_at"] is None
    assert newest["call_id"] is None
    assert "attempts_made" not in newest


async def test_filters_by_status_pool_and_time(client: httpx.AsyncClient, clock: FakeClock) -> None:
    await callback_pool(client)
    await make_pool(client, "second", size=0)
    made, times = await five(client, clock)
    for callback_id in (made[1], made[3]):
        assert (await cancel(client, callback_id)).status_code == 200
    other = (await ask(client, "+12127778999", pool="second"))["callback_id"]

    assert await ids(client, status="cancelled") == [made[3], made[1]]
    assert await ids(client, status="queued") == [other, made[4], made[2], made[0]]
    assert await ids(client, status="completed") == []
    assert await ids(client, pool="second") == [other]
    assert await ids(client, pool="default") == made[::-1]
    assert await ids(client, pool="default", status="queued") == [made[4], made[2], made[0]]
    # `from` includes its instant, `to` excludes its own.
    assert await ids(client, **{"from": z(times[1]), "to": z(times[3])}) == [made[2], made[1]]
    assert await ids(client, **{"from": z(times[4])}) == [other, made[4]]
    assert await ids(client, to=z(times[1])) == [made[0]]
    # Other offsets mean the same instants.
    eastern = (times[1] - timedelta(hours=5)).isoformat().replace("+00:00", "-05:00")
    assert await ids(client, **{"from": eastern, "to": z(times[2])}) == [made[1]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "bogus"}, "query.status"),
        ({"pool": "nope"}, "query.pool"),
        ({"from": "2026-11-26T12:00:00"}, "query.from"),
        ({"to": "yesterday"}, "query.to"),
        ({"from": "2026-11-26T12:00:00Z", "to": "2026-11-26T12:00:00Z"}, "query.from"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "501"}, "query.limit"),
        ({"cursor": "not a cursor"}, "query.cursor"),
        ({"cursor": "Zm9v"}, "query.cursor"),  # "foo"
        (
            {"cursor": base64.urlsafe_b64encode(b"2026-11-26T12:00:00|cb_x").decode()},
            "query.cursor",
        ),
        (
            {"cursor": base64.urlsafe_b64encode(b"2026-11-26T12:00:00+00:00|xx_1").decode()},
            "query.cursor",
        ),
        ({"cursor": "x" * 201}, "query.cursor"),
    ],
)
async def test_bad_query_is_a_422_problem(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    await callback_pool(client)
    await ask(client)
    answer = await client.get("/v1/callbacks", params=params, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field


async def walk(client: httpx.AsyncClient, **params: Any) -> list[list[str]]:
    """Every page of the listing, following the cursors."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        listing = await page(client, **query)
        pages.append([item["id"] for item in listing["items"]])
        cursor = listing["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 10, pages


async def test_pages_follow_the_cursor_without_duplicates(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await callback_pool(client)
    made, _ = await five(client, clock)
    pages = await walk(client, limit=2)
    assert pages == [made[4:2:-1], made[2:0:-1], made[:1]]
    # A page that ends exactly at the last item gives no cursor.
    assert await walk(client, limit=5) == [made[::-1]]
    # The cursor keeps the filter's company.
    assert await walk(client, limit=1, **{"from": "2026-11-26T12:02:00Z"}) == [
        [made[4]],
        [made[3]],
        [made[2]],
    ]


async def test_pages_of_requests_made_at_the_same_instant_are_complete(
    client: httpx.AsyncClient,
) -> None:
    await callback_pool(client)
    made = {(await ask(client, phone))["callback_id"] for phone in PHONES}
    pages = await walk(client, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [callback_id for p in pages for callback_id in p]
    assert len(set(flat)) == 5
    assert set(flat) == made
    assert flat == await ids(client)  # the same order as one page


async def test_ops_endpoints_need_the_admin_token(client: httpx.AsyncClient) -> None:
    await callback_pool(client)
    queued = await ask(client)
    callback_id = queued["callback_id"]
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
        for method, path in (
            ("GET", "/v1/callbacks"),
            ("GET", f"/v1/callbacks/{callback_id}"),
            ("POST", f"/v1/callbacks/{callback_id}/cancel"),
        ):
            answer = await client.request(method, path, headers=headers)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["www-authenticate"].startswith("Bearer")
    assert (await ops(client, callback_id))["status"] == "queued"


async def test_detail_of_a_request_and_unknown_ids(client: httpx.AsyncClient) -> None:
    await callback_pool(client)
    queued = await ask(client)
    view = await ops(client, queued["callback_id"])
    assert view["id"] == queued["callback_id"]
    assert view["session_id"] == queued["session_id"]
    assert view["attempts_made"] == []
    unknown = "cb_" + "A" * 22
    for method, path in (
        ("GET", f"/v1/callbacks/{unknown}"),
        ("POST", f"/v1/callbacks/{unknown}/cancel"),
    ):
        answer = await client.request(method, path, headers=ADMIN)
        assert answer.status_code == 404, answer.text
        assert answer.json()["field"] == "callback_id"
    malformed = await client.get("/v1/callbacks/cb_nope", headers=ADMIN)
    assert malformed.status_code == 422


async def test_cancelling_a_queued_request_and_cancelling_it_again(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await callback_pool(client)
    queued = await ask(client)
    callback_id = queued["callback_id"]
    clock.advance(5)
    first = await cancel(client, callback_id)
    assert first.status_code == 200, first.text
    cancelled = first.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["ended_at"] == z(clock.now)
    assert cancelled["updated_at"] == z(clock.now)
    assert cancelled["attempts_made"] == []

    clock.advance(5)
    again = await cancel(client, callback_id)
    assert again.status_code == 200, again.text
    assert again.json() == cancelled
    assert await ops(client, callback_id) == cancelled
    public = (await client.get(f"/callback/{callback_id}")).json()
    assert public["state"] == "cancelled"
    assert public["next_attempt_at"] is None
    assert public["ended_at"] == cancelled["ended_at"]
    # No longer pending: the number may ask again, and gets a new request.
    renewed = await ask(client)
    assert renewed["callback_id"] != callback_id
    assert renewed["state"] == "queued"


async def test_a_completed_request_cannot_be_cancelled(database_url: str, clock: FakeClock) -> None:
    async with (
        live_service(database_url, clock, **FAST) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await callback_pool(client)
        await behave(client, AGENTS[0], answer_after=1)
        await behave(client, CUSTOMER, answer_after=1, talk=5)
        queued = await ask(client)
        done = await wait_for(client, queued["callback_id"], "completed", "failed")
        assert done["status"] == "completed", done
        refused = await cancel(client, queued["callback_id"])
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["field"] == "callback_id"
        assert "completed" in refused.json()["detail"]
        after = await ops(client, queued["callback_id"])
        assert after["status"] == "completed"
        assert after["ended_at"] == done["ended_at"]


async def test_cancelling_while_the_agent_rings_hangs_the_call_up(
    database_url: str, clock: FakeClock
) -> None:
    # Real-time emulator, so the agent's phone rings long enough to cancel meanwhile.
    settings = {**FAST, "emulator_speed": 1.0, "callback_agent_ring_seconds": 120}
    agent = AGENTS[0]
    async with (
        live_service(database_url, clock, **settings) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await callback_pool(client, agents=[agent])
        await behave(client, agent, answer_after=60)
        await behave(client, CUSTOMER, answer_after=1)
        queued = await ask(client)
        callback_id = queued["callback_id"]
        ringing = await wait_until(
            client,
            callback_id,
            lambda v: (
                v["status"] == "calling_agent"
                and bool(v["attempts_made"])
                and v["attempts_made"][0]["provider_call_id"] is not None
            ),
        )
        [attempt] = ringing["attempts_made"]
        [leg] = await calls_to(client, agent)
        assert leg["token"] == attempt["provider_call_id"]
        assert leg["state"] != "ended"

        answer = await cancel(client, callback_id)
        assert answer.status_code == 200, answer.text
        cancelled = answer.json()
        assert cancelled["status"] == "cancelled"
        assert cancelled["ended_at"] is not None
        assert cancelled["attempts_made"][0]["status"] == "cancelled"

        [ended] = await ended_calls_to(client, agent)
        assert ended["token"] == attempt["provider_call_id"]
        assert ended["hangup"] == "api"
        assert ended["dials"] == []
        assert ended["billsec"] == 0
        assert await calls_to(client, CUSTOMER) == []
        # The leg's last session updates have come (they precede `ended`) and change nothing.
        await asyncio.sleep(0.3)  # a worker that missed the cancel would dial again now
        after = await ops(client, callback_id)
        assert after["status"] == "cancelled"
        assert after["ended_at"] == cancelled["ended_at"]
        assert [a["status"] for a in after["attempts_made"]] == ["cancelled"]
        assert len(await calls_to(client, agent)) == 1
        assert await calls_to(client, CUSTOMER) == []
