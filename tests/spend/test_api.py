"""POST /v1/spend and GET /v1/spend: idempotent upserts, exact costs, all-or-none imports."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.spend.helpers import import_rows, row, stored
from tests.support import ADMIN, FakeClock


def _problem(response: httpx.Response, field: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["field"] == field, problem
    assert problem["detail"].startswith((field, field.removeprefix("query."))), problem
    return problem


async def test_same_rows_twice_change_nothing_and_a_changed_row_is_updated(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    rows = [
        row(medium="cpc", campaign="winter", cost="12.50", clicks=100, impressions=4000),
        row(source="bing", medium="cpc", cost="3"),
        row(day="2026-11-21", cost="0.25"),
    ]
    assert await import_rows(client, rows) == {
        "received": 3,
        "inserted": 3,
        "updated": 0,
        "unchanged": 0,
    }
    first = await stored(client)
    assert len(first) == 3
    assert {r["created_at"] for r in first} == {"2026-11-26T12:00:00Z"}

    clock.advance(3600)
    # The same values written another way are the same values.
    again = [{**rows[0], "cost": 12.5, "currency": "usd"}, {**rows[1], "cost": "3.000"}, rows[2]]
    assert await import_rows(client, again) == {
        "received": 3,
        "inserted": 0,
        "updated": 0,
        "unchanged": 3,
    }
    assert await stored(client) == first  # updated_at untouched too

    clock.advance(3600)
    changed = [
        {**rows[0], "cost": "12.51"},
        {**rows[1], "clicks": 7},
        rows[2],
        row(day="2026-11-22"),
    ]
    assert await import_rows(client, changed) == {
        "received": 4,
        "inserted": 1,
        "updated": 2,
        "unchanged": 1,
    }
    after = {(r["day"], r["source"]): r for r in await stored(client)}
    google = after["2026-11-20", "google"]
    assert (google["cost"], google["cost_micros"]) == ("12.51", 12_510_000)
    assert google["created_at"] == "2026-11-26T12:00:00Z"
    assert google["updated_at"] == "2026-11-26T14:00:00Z"
    assert after["2026-11-20", "bing"]["clicks"] == 7
    assert after["2026-11-20", "bing"]["updated_at"] == "2026-11-26T14:00:00Z"
    assert after["2026-11-21", "google"]["updated_at"] == "2026-11-26T12:00:00Z"
    assert after["2026-11-22", "google"]["created_at"] == "2026-11-26T14:00:00Z"

    # Left out, clicks and impressions are replaced by null: the import is the truth.
    clock.advance(60)
    dropped = await import_rows(client, [row(medium="cpc", campaign="winter", cost="12.51")])
    assert (dropped["updated"], dropped["unchanged"]) == (1, 0)
    google = (await stored(client, "2026-11-20", "2026-11-20", source="google"))[0]
    assert (google["clicks"], google["impressions"]) == (None, None)


async def test_listing_shows_exact_decimals_in_key_order(client: httpx.AsyncClient) -> None:
    await import_rows(
        client,
        [
            row(day="2026-11-21", source="meta", cost=7, currency="eur"),
            row(day="2026-11-20", source="google", medium="cpc", cost="12.5"),
            row(day="2026-11-20", source="google", cost=0.1),
            row(day="2026-11-20", source="google", medium="cpc", campaign="b", cost="0.000001"),
            row(day="2026-11-20", source="bing", cost="1234.567800", clicks=0),
            row(day="2026-11-19", source="google", cost="999999999999.999999"),
            row(day="2026-11-22", source="google", cost="0"),
        ],
    )
    items = await stored(client, "2026-11-20", "2026-11-21")
    assert [
        (r["day"], r["source"], r["medium"], r["campaign"], r["cost"], r["currency"]) for r in items
    ] == [
        ("2026-11-20", "bing", "", "", "1234.5678", "USD"),
        ("2026-11-20", "google", "", "", "0.10", "USD"),
        ("2026-11-20", "google", "cpc", "", "12.50", "USD"),
        ("2026-11-20", "google", "cpc", "b", "0.000001", "USD"),
        ("2026-11-21", "meta", "", "", "7.00", "EUR"),
    ]
    assert items[0]["clicks"] == 0
    assert items[0]["impressions"] is None
    assert [r["cost_micros"] for r in items] == [1_234_567_800, 100_000, 12_500_000, 1, 7_000_000]
    only_google = await stored(client, "2026-11-19", "2026-11-22", source="google")
    assert [r["cost"] for r in only_google] == [
        "999999999999.999999",
        "0.10",
        "12.50",
        "0.000001",
        "0.00",
    ]


async def test_listing_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    await import_rows(
        client, [row(day=f"2026-11-{d:02d}", campaign=c) for d in (1, 2) for c in "abc"]
    )
    first = await client.get(
        "/v1/spend", params={"from": "2026-11-01", "to": "2026-11-30", "limit": 4}, headers=ADMIN
    )
    page = first.json()
    assert [(r["day"], r["campaign"]) for r in page["items"]] == [
        ("2026-11-01", "a"),
        ("2026-11-01", "b"),
        ("2026-11-01", "c"),
        ("2026-11-02", "a"),
    ]
    rest = await client.get(
        "/v1/spend",
        params={
            "from": "2026-11-01",
            "to": "2026-11-30",
            "limit": 4,
            "cursor": page["next_cursor"],
        },
        headers=ADMIN,
    )
    assert [(r["day"], r["campaign"]) for r in rest.json()["items"]] == [
        ("2026-11-02", "b"),
        ("2026-11-02", "c"),
    ]
    assert rest.json()["next_cursor"] is None
    assert len(await stored(client, limit=1)) == 6


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cost": "-0.01"}, "rows[1].cost"),
        ({"cost": -5}, "rows[1].cost"),
        ({"cost": "1.1234567"}, "rows[1].cost"),
        ({"cost": "NaN"}, "rows[1].cost"),
        ({"cost": "Infinity"}, "rows[1].cost"),
        ({"cost": "ten"}, "rows[1].cost"),
        ({"cost": "1000000000000"}, "rows[1].cost"),
        ({"cost": None}, "rows[1].cost"),
        ({"currency": "US"}, "rows[1].currency"),
        ({"currency": "U$D"}, "rows[1].currency"),
        ({"currency": "dollars"}, "rows[1].currency"),
        ({"day": "2026-13-01"}, "rows[1].day"),
        ({"day": "2026-02-30"}, "rows[1].day"),
        ({"day": "26/11/2026"}, "rows[1].day"),
        ({"day": 1764115200}, "rows[1].day"),
        ({"day": "2026-11-26T00:00:00"}, "rows[1].day"),
        ({"source": ""}, "rows[1].source"),
        ({"source": "x" * 256}, "rows[1].source"),
        ({"medium": "x" * 256}, "rows[1].medium"),
        ({"clicks": -1}, "rows[1].clicks"),
        ({"impressions": 1.5}, "rows[1].impressions"),
        ({"surprise": 1}, "rows[1].surprise"),
    ],
)
async def test_a_bad_row_refuses_the_import_naming_row_and_field(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    rows = [row(), {**row(source="bing"), **change}, row(source="meta")]
    _problem(await client.post("/v1/spend", json={"rows": rows}, headers=ADMIN), field)
    assert await stored(client) == []


@pytest.mark.parametrize("missing", ["day", "source", "cost", "currency"])
async def test_a_missing_field_is_named(client: httpx.AsyncClient, missing: str) -> None:
    bad = {k: v for k, v in row().items() if k != missing}
    response = await client.post("/v1/spend", json={"rows": [row(), bad]}, headers=ADMIN)
    _problem(response, f"rows[1].{missing}")


async def test_a_nan_literal_is_refused(client: httpx.AsyncClient) -> None:
    body = '{"rows": [{"day": "2026-11-20", "source": "google", "cost": NaN, "currency": "USD"}]}'
    response = await client.post(
        "/v1/spend", content=body, headers={**ADMIN, "content-type": "application/json"}
    )
    _problem(response, "rows[0].cost")
    assert await stored(client) == []


async def test_the_same_key_twice_names_both_positions(client: httpx.AsyncClient) -> None:
    rows = [
        row(medium="cpc"),
        row(source="bing"),
        row(source="meta"),
        row(source="bing", medium="", campaign=None, cost="99"),  # '' and null are absent
    ]
    problem = _problem(
        await client.post("/v1/spend", json={"rows": rows}, headers=ADMIN), "rows[3]"
    )
    assert "rows[1]" in problem["detail"]
    assert problem["errors"] == [
        {"field": "rows[3]", "message": "the same day, source, medium and campaign as rows[1]"}
    ]
    assert await stored(client) == []


async def test_a_refused_import_leaves_stored_rows_as_they_were(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await import_rows(client, [row(), row(source="bing")])
    before = await stored(client)
    clock.advance(60)
    rows = [row(cost="11"), row(source="bing", cost="12"), row(source="new"), row(cost="-1")]
    _problem(await client.post("/v1/spend", json={"rows": rows}, headers=ADMIN), "rows[3].cost")
    assert await stored(client) == before


async def test_import_size_is_bounded(client: httpx.AsyncClient) -> None:
    too_many = [row(campaign=str(n)) for n in range(50_001)]
    response = await client.post("/v1/spend", json={"rows": too_many}, headers=ADMIN)
    problem = _problem(response, "rows")
    assert "50000" in problem["detail"]
    _problem(await client.post("/v1/spend", json={"rows": []}, headers=ADMIN), "rows")
    _problem(await client.post("/v1/spend", json={}, headers=ADMIN), "rows")
    assert await stored(client) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "2026-11-30"}, "query.from"),
        ({"from": "2026-11-01"}, "query.to"),
        ({"from": "2026-11-31", "to": "2026-12-01"}, "query.from"),
        ({"from": "20261101", "to": "2026-12-01"}, "query.from"),
        ({"from": "2026-11-02", "to": "2026-11-01"}, "query.to"),
        ({"from": "2026-11-01", "to": "2026-11-30", "cursor": "bm9wZQ"}, "query.cursor"),
        ({"from": "2026-11-01", "to": "2026-11-30", "limit": "0"}, "query.limit"),
        ({"from": "2026-11-01", "to": "2026-11-30", "source": ""}, "query.source"),
    ],
)
async def test_bad_listing_query_is_refused_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    _problem(await client.get("/v1/spend", params=params, headers=ADMIN), field)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_spend_needs_the_admin_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    posted = await client.post("/v1/spend", json={"rows": [row()]}, headers=headers)
    listed = await client.get(
        "/v1/spend", params={"from": "2026-11-01", "to": "2026-11-30"}, headers=headers
    )
    for response in (posted, listed):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert await stored(client) == []
