"""Ops API: pool sizing by Little's law, figures worked out by hand from a fixed scenario."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.helpers import FALLBACK, lease, make_pool
from tests.support import ADMIN, FakeClock

TTL = 600
COOLDOWN = 300
SIZE = 5


class Timeline:
    """Moves the fake clock to a number of seconds after the scenario's start."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.start = clock.now

    def at(self, seconds: int) -> None:
        moment = self.start + timedelta(seconds=seconds)
        assert moment >= self.clock.now, "the scenario only moves forward"
        self.clock.now = moment


async def new_lease(client: httpx.AsyncClient, session_id: str | None = None) -> str:
    """A new lease, for a new visitor or a returning one without a live lease: its session."""
    body = await lease(client, session_id=session_id) if session_id else await lease(client)
    assert (body["tracked"], body["expires_in"]) == (True, TTL), body
    if session_id:
        assert body["session_id"] == session_id
    session: str = body["session_id"]
    return session


async def heartbeat(client: httpx.AsyncClient, *sessions: str) -> None:
    """Renew live leases: same lease row, its end moved to now + TTL."""
    for session in sessions:
        body = await lease(client, session_id=session)
        assert (body["tracked"], body["expires_in"]) == (True, TTL), body


async def refused(client: httpx.AsyncClient) -> str:
    """A new visitor served the fallback because no number is free: its session."""
    body = await lease(client)
    assert (body["tracked"], body["fallback_reason"]) == (False, "pool_exhausted"), body
    assert body["phonenumber"] == FALLBACK.lstrip("+")
    session: str = body["session_id"]
    return session


async def crawler(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/get_tracking_number", json={}, headers={"user-agent": "Googlebot/2.1"}
    )
    assert response.json()["fallback_reason"] == "bot"


async def sizing(client: httpx.AsyncClient, window: int | None = None) -> dict[str, Any]:
    query = "" if window is None else f"?window_seconds={window}"
    response = await client.get(f"/v1/pools/default/sizing{query}", headers=ADMIN)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def run_scenario(client: httpx.AsyncClient, t: Timeline) -> None:
    """Eight leases of a 5-number pool (TTL 600 s, cooldown 300 s) within the hour.

    Times in seconds from the start. A lease holds its number until it ends, then the number
    rests for 300 s before anyone else may have it.

        lease  started  renewed at                     ends
        s1        0     500 1000 1500 2000 2500 3000   3600
        s2        0     500 1000 1500 2000 2500 3000   3600
        s3        0     500 1000                       1600
        s4        0     -                               600
        s5      300     800                            1400
        s6      900     1400 1900 2400 2900            3500  (refused at 700)
        s7     1700     -                              2300  (s5's number, free since 1700)
        s8     1900     2400 2900                      3500  (refused at 1800)

    Fallbacks: s6 at 700 (s4's number rests until 900) and s8 at 1800 (s3's number rests
    until 1900) for pool_exhausted; a crawler at 700 for bot.
    """
    await make_pool(client, size=SIZE, lease_ttl_seconds=TTL, cooldown_seconds=COOLDOWN)
    t.at(0)
    s1, s2, s3 = [await new_lease(client) for _ in range(3)]
    await new_lease(client)  # s4
    t.at(300)
    s5 = await new_lease(client)  # the fifth number: all are leased
    t.at(500)
    await heartbeat(client, s1, s2, s3)
    t.at(700)
    s6 = await refused(client)
    await crawler(client)
    t.at(800)
    await heartbeat(client, s5)
    t.at(900)
    await new_lease(client, s6)  # s4's number, rested
    t.at(1000)
    await heartbeat(client, s1, s2, s3)
    t.at(1400)
    await heartbeat(client, s6)
    t.at(1500)
    await heartbeat(client, s1, s2)
    t.at(1700)
    await new_lease(client)  # s7
    t.at(1800)
    s8 = await refused(client)
    t.at(1900)
    await heartbeat(client, s6)
    await new_lease(client, s8)  # s3's number, rested
    t.at(2000)
    await heartbeat(client, s1, s2)
    t.at(2400)
    await heartbeat(client, s6, s8)
    t.at(2500)
    await heartbeat(client, s1, s2)
    t.at(2900)
    await heartbeat(client, s6, s8)
    t.at(3000)
    await heartbeat(client, s1, s2)


def assert_window(body: dict[str, Any], now: datetime, window: int) -> None:
    assert body["window_seconds"] == window
    assert datetime.fromisoformat(body["until"]) == now
    assert datetime.fromisoformat(body["since"]) == now - timedelta(seconds=window)


async def test_sizing_follows_littles_law_over_the_window(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    t = Timeline(clock)
    await run_scenario(client, t)
    t.at(3300)

    # Held up to now (t=3300), a running lease counting until now:
    #   s1 3300, s2 3300, s3 1600, s4 600, s5 1100, s6 2400, s7 600, s8 1400 = 14300 s.
    # Mean lease 14300 / 8 = 1787.5 s; with the cooldown, mean hold 2087.5 s.
    hour = await sizing(client, 3600)
    assert_window(hour, clock.now, 3600)
    # Little's law over the hour: L = 8/3600 per s x 2087.5 s = (14300 + 8 x 300) / 3600.
    busy = (14300 + 8 * 300) / 3600  # 4.6389
    assert math.ceil(busy / 0.75) == 7
    assert hour == {
        "pool": "default",
        "window_seconds": 3600,
        "since": hour["since"],
        "until": hour["until"],
        "size": 5,
        "leases_started": 8,  # renewals start no lease; refused visitors' later leases do
        "arrivals_per_hour": 8.0,
        "mean_hold_seconds": 2087.5,
        "mean_lease_seconds": 1787.5,
        "average_busy_numbers": 4.6389,
        "turned_away_visits": 0,  # s6 and s8 were refused, then served in the window
        "average_demand_numbers": 4.6389,
        "target_utilisation": 0.75,
        "recommended_size": 7,  # ceil(4.6389 / 0.75) = ceil(6.185); the peak (5) is lower
        "add_numbers": 2,
        "peak_concurrent_leases": 5,  # t=300..600: s1-s5
        "fallbacks_total": 3,
        "fallbacks_by_reason": {"pool_exhausted": 2, "bot": 1},
        "fallback_rate": 0.2727,  # 3 / (3 + 8)
    }

    # The same traffic over a day: the average is small, and the peak sets the size.
    day = await sizing(client)
    assert_window(day, clock.now, 86400)
    assert (day["arrivals_per_hour"], day["average_busy_numbers"]) == (0.3333, 0.1933)
    assert (day["mean_hold_seconds"], day["mean_lease_seconds"]) == (2087.5, 1787.5)
    # ceil((14300 + 2400) / 86400 / 0.75) = ceil(0.258) = 1 < peak 5.
    assert (day["recommended_size"], day["add_numbers"], day["peak_concurrent_leases"]) == (
        5,
        0,
        5,
    )
    assert (day["leases_started"], day["fallbacks_total"], day["fallback_rate"]) == (8, 3, 0.2727)


async def test_sizing_counts_only_leases_started_in_the_window(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    t = Timeline(clock)
    await run_scenario(client, t)
    t.at(4600)  # every lease has ended; the hour now begins at t=1000

    # Started since t=1000: s7 (600 s) and s8 (1600 s). s6, begun at 900, is left out
    # although it ran into the window; the peak still sees it (t=1000: s1 s2 s3 s5 s6).
    hour = await sizing(client, 3600)
    assert_window(hour, clock.now, 3600)
    assert hour["leases_started"] == 2
    assert hour["arrivals_per_hour"] == 2.0
    assert (hour["mean_lease_seconds"], hour["mean_hold_seconds"]) == (1100.0, 1400.0)
    assert hour["average_busy_numbers"] == 0.7778  # (2200 + 2 x 300) / 3600
    assert hour["peak_concurrent_leases"] == 5
    assert (hour["recommended_size"], hour["add_numbers"]) == (5, 0)  # ceil(1.04) = 2 < 5
    assert hour["fallbacks_by_reason"] == {"pool_exhausted": 1}  # s8 at 1800
    assert (hour["fallbacks_total"], hour["fallback_rate"]) == (1, 0.3333)


async def test_average_at_the_target_needs_no_extra_number(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    # Three numbers held for a whole hour with no cooldown: L = 3 x 3600 / 3600 = 3, and
    # 3 / 0.75 = 4 exactly, so the recommendation is 4, not 5.
    await make_pool(client, size=4, lease_ttl_seconds=3600, cooldown_seconds=0)
    for _ in range(3):
        await lease(client)
    clock.advance(3600)
    body = await sizing(client, 3600)
    assert (body["leases_started"], body["mean_lease_seconds"], body["mean_hold_seconds"]) == (
        3,
        3600.0,
        3600.0,
    )
    assert (body["average_busy_numbers"], body["peak_concurrent_leases"]) == (3.0, 3)
    assert (body["recommended_size"], body["add_numbers"]) == (4, 0)


async def test_a_single_short_lease_still_needs_one_number(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1, lease_ttl_seconds=TTL, cooldown_seconds=COOLDOWN)
    await lease(client)
    clock.advance(100)  # the lease runs: it counts 100 s so far, then the cooldown
    body = await sizing(client)
    assert (body["mean_lease_seconds"], body["mean_hold_seconds"]) == (100.0, 400.0)
    assert body["average_busy_numbers"] == 0.0046  # 400 / 86400
    assert (body["recommended_size"], body["add_numbers"], body["size"]) == (1, 0, 1)


@pytest.mark.parametrize("size", [0, 3])
async def test_no_traffic_is_all_zeros(
    client: httpx.AsyncClient, clock: FakeClock, size: int
) -> None:
    await make_pool(client, size=size, lease_ttl_seconds=TTL, cooldown_seconds=COOLDOWN)
    clock.advance(7200)
    body = await sizing(client)
    assert_window(body, clock.now, 86400)
    assert {k: v for k, v in body.items() if k not in ("since", "until")} == {
        "pool": "default",
        "window_seconds": 86400,
        "size": size,
        "leases_started": 0,
        "arrivals_per_hour": 0.0,
        "mean_hold_seconds": 0.0,
        "mean_lease_seconds": 0.0,
        "average_busy_numbers": 0.0,
        "turned_away_visits": 0,
        "average_demand_numbers": 0.0,
        "target_utilisation": 0.75,
        "recommended_size": 0,
        "add_numbers": 0,
        "peak_concurrent_leases": 0,
        "fallbacks_total": 0,
        "fallbacks_by_reason": {},
        "fallback_rate": 0.0,
    }


async def test_an_empty_pool_is_sized_for_the_visits_it_turned_away(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client, size=0)  # TTL 1800 s, cooldown 900 s
    turned_away = [(await lease(client)) for _ in range(2)]
    assert {body["fallback_reason"] for body in turned_away} == {"pool_empty"}
    # One of them asks again (a heartbeat): still one visit.
    await lease(client, session_id=turned_away[0]["session_id"])
    await crawler(client)  # not demand
    body = await sizing(client)
    assert body["leases_started"] == 0
    assert body["turned_away_visits"] == 2
    # Each would have held a number for the TTL and the cooldown: 2 x 2700 / 86400.
    assert body["average_demand_numbers"] == 0.0625
    assert (body["recommended_size"], body["add_numbers"]) == (1, 1)  # ceil(0.0833)
    assert body["fallbacks_by_reason"] == {"pool_empty": 3, "bot": 1}
    assert (body["fallbacks_total"], body["fallback_rate"]) == (4, 1.0)


async def test_visits_turned_away_from_a_full_pool_raise_the_recommendation(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1, lease_ttl_seconds=TTL, cooldown_seconds=COOLDOWN)
    await new_lease(client)
    for _ in range(3):
        await refused(client)
    clock.advance(600)  # the lease ran its 600 s
    hour = await sizing(client, 3600)
    # Served: (600 + 300) / 3600 = 0.25; turned away: 3 x 900 / 3600 = 0.75; total 1.0.
    assert (hour["average_busy_numbers"], hour["turned_away_visits"]) == (0.25, 3)
    assert hour["average_demand_numbers"] == 1.0
    assert (hour["recommended_size"], hour["add_numbers"]) == (2, 1)  # ceil(1.0 / 0.75)


@pytest.mark.parametrize("window", ["3599", "7776001", "0", "-1", "day"])
async def test_bad_window_is_422(client: httpx.AsyncClient, window: str) -> None:
    await make_pool(client, size=1)
    response = await client.get(f"/v1/pools/default/sizing?window_seconds={window}", headers=ADMIN)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "query.window_seconds"


async def test_window_bounds_are_accepted(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=1)
    for window in (3600, 90 * 86400):
        assert (await sizing(client, window))["window_seconds"] == window


async def test_unknown_pool_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/pools/nope/sizing", headers=ADMIN)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "name"


async def test_sizing_needs_the_admin_token(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=1)
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
        response = await client.get("/v1/pools/default/sizing", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
