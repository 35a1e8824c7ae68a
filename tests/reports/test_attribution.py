"""GET /v1/reports/attribution against a history whose figures were worked out by hand."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.reports import fixture
from tests.support import ADMIN

PERIOD = {"from": "2026-11-10", "to": "2026-11-14"}
COLUMNS = (
    "sessions",
    "numbers_leased",
    "calls",
    "first_time_calls",
    "answered_calls",
    "avg_talk_seconds",
    "callbacks_requested",
    "callbacks_completed",
    "spend",
    "cost_per_call",
    "cost_per_first_time_call",
)
# group: figures in COLUMNS order. Worked out from tests/reports/fixture.py:
# google = S1, S2, S3 (S3 by its gclid); leases L1, L2, L3 and S1's second lease L5; calls
# C1 (first, 120 s), C2 (first, unanswered), C3 (repeat, 60 s); callback cb_2 failed;
# spend 100 + 50 (spring) + 30 (no campaign) = 180 over 3 calls and 2 first-time calls.
BY_SOURCE = {
    "google": (3, 4, 3, 2, 2, 90.0, 1, 0, "180.00", "60.00", "90.00"),
    "bing": (1, 1, 1, 1, 1, 30.0, 0, 0, "60.00", "60.00", "60.00"),
    "facebook.com": (1, 0, 1, 1, 1, 200.0, 1, 1, None, None, None),
    "newsletter": (1, 1, 1, 1, 1, 10.0, 0, 0, None, None, None),
    None: (0, 0, 1, 1, 1, 45.0, 0, 0, None, None, None),
}
# 465 s of talk over 6 answered calls; 240 spent over 7 calls (34.285…) and 6 first-time.
TOTALS = (6, 6, 7, 6, 6, 77.5, 2, 1, "240.00", "34.29", "40.00")


def table(report: dict[str, Any]) -> dict[str | None, tuple[object, ...]]:
    """The report's rows as {group: figures}, in the report's order."""
    return {row["group"]: tuple(row[c] for c in COLUMNS) for row in report["rows"]}


@pytest.fixture
async def history(app: FastAPI) -> None:
    """The fixture's records, written straight to the database."""
    async with app.state.ct.sessionmaker() as db, db.begin():
        await fixture.build(db)


async def report(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    """The report as JSON, asserting a 200."""
    answer = await client.get("/v1/reports/attribution", params={**PERIOD, **params}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


@pytest.mark.usefixtures("history")
async def test_by_source_every_figure_and_the_order(client: httpx.AsyncClient) -> None:
    found = await report(client)
    assert list(table(found).items()) == list(BY_SOURCE.items())
    assert tuple(found["totals"][c] for c in COLUMNS) == TOTALS
    assert found["currency"] == "USD"
    assert (found["start"], found["end"]) == ("2026-11-10T00:00:00Z", "2026-11-15T00:00:00Z")


@pytest.mark.usefixtures("history")
async def test_by_campaign_the_untagged_calls_and_their_spend(client: httpx.AsyncClient) -> None:
    found = await report(client, group_by="campaign")
    # No campaign: S3, S5, S6; leases L3, L6; calls C3, C5, C6, C7 (315 s over 4 answered);
    # the 30 spent on google/cpc without a campaign.
    assert list(table(found).items()) == [
        (None, (3, 2, 4, 3, 4, 78.8, 1, 1, "30.00", "7.50", "10.00")),
        ("spring", (2, 3, 2, 2, 1, 120.0, 1, 0, "150.00", "75.00", "75.00")),
        ("autumn", (1, 1, 1, 1, 1, 30.0, 0, 0, "60.00", "60.00", "60.00")),
    ]


@pytest.mark.usefixtures("history")
async def test_by_pool_visits_are_those_that_leased_there(client: httpx.AsyncClient) -> None:
    found = await report(client, group_by="pool")
    # main: leases of S1, S2, S3, S6; calls C1, C2, C3, C5, C6 (235 s over 4 answered).
    assert list(table(found).items()) == [
        ("main", (4, 4, 5, 4, 4, 58.8, 1, 0, None, None, None)),
        ("brand", (2, 2, 2, 2, 2, 115.0, 1, 1, None, None, None)),
    ]
    assert found["totals"]["spend"] is None


@pytest.mark.usefixtures("history")
async def test_by_landing_page_without_query_or_fragment(client: httpx.AsyncClient) -> None:
    found = await report(client, group_by="landing_page")
    assert list(table(found).items()) == [
        ("https://shop.example/a", (3, 4, 3, 2, 3, 70.0, 0, 0, None, None, None)),
        ("https://shop.example/b", (2, 1, 2, 2, 1, 200.0, 2, 1, None, None, None)),
        ("https://news.example/", (1, 1, 1, 1, 1, 10.0, 0, 0, None, None, None)),
        (None, (0, 0, 1, 1, 1, 45.0, 0, 0, None, None, None)),
    ]


@pytest.mark.usefixtures("history")
async def test_days_are_the_time_zones_days(client: httpx.AsyncClient) -> None:
    found = await report(client, tz="America/New_York")
    # New York's 10th-14th: S6, L6 and C6 (03:00 UTC on the 10th) fall out; S7 and cb_3
    # (02:00 UTC on the 15th) fall in. Spend is by the platform's own day: unchanged.
    rows = table(found)
    assert rows["newsletter"] == (1, 0, 0, 0, 0, None, 1, 0, None, None, None)
    assert list(rows)[-1] == "newsletter"  # no calls: last
    assert rows["google"] == BY_SOURCE["google"]
    assert (found["start"], found["end"]) == ("2026-11-10T05:00:00Z", "2026-11-15T05:00:00Z")


@pytest.mark.usefixtures("history")
async def test_csv_is_the_same_report(client: httpx.AsyncClient) -> None:
    answer = await client.get(
        "/v1/reports/attribution", params=PERIOD, headers={**ADMIN, "Accept": "text/csv"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        'filename="attribution-source-2026-11-10-2026-11-14.csv"'
        in answer.headers["content-disposition"]
    )
    lines = answer.text.split("\r\n")
    assert lines[0] == "source," + ",".join(COLUMNS)
    assert lines[1] == "google,3,4,3,2,2,90.0,1,0,180.00,60.00,90.00"
    assert lines[5] == ",0,0,1,1,1,45.0,0,0,,,"
    assert lines[6] == "(total),6,6,7,6,6,77.5,2,1,240.00,34.29,40.00"
    assert lines[7] == ""
    by_param = await client.get(
        "/v1/reports/attribution", params={**PERIOD, "format": "csv"}, headers=ADMIN
    )
    assert by_param.text == answer.text


@pytest.mark.usefixtures("history")
async def test_several_currencies_need_a_choice(app: FastAPI, client: httpx.AsyncClient) -> None:
    async with app.state.ct.sessionmaker() as db, db.begin():
        from datetime import date

        from app.db.models import MediaSpend

        db.add(
            MediaSpend(
                day=date(2026, 11, 12),
                source="google",
                medium="cpc",
                campaign="winter",
                cost_micros=10_000_000,
                currency="EUR",
                created_at=fixture.at(1, 0),
                updated_at=fixture.at(1, 0),
            )
        )
    refused = await client.get("/v1/reports/attribution", params=PERIOD, headers=ADMIN)
    assert refused.status_code == 422
    assert refused.json()["field"] == "query.currency"
    assert "EUR, USD" in refused.json()["detail"]
    usd = await report(client, currency="usd")
    assert table(usd)["google"] == BY_SOURCE["google"]
    eur = await report(client, currency="EUR")
    assert table(eur)["google"][8:] == ("10.00", "3.33", "5.00")
    assert table(eur)["bing"][8] is None


async def test_no_spend_at_all_leaves_costs_empty(client: httpx.AsyncClient) -> None:
    found = await report(client)
    assert found["rows"] == []
    assert found["currency"] is None
    assert found["totals"]["calls"] == 0
    assert found["totals"]["cost_per_call"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-11-14", "to": "2026-11-10"}, "query.to"),
        ({"from": "2025-01-01", "to": "2026-11-10"}, "query.to"),
        ({**PERIOD, "tz": "Mars/Olympus"}, "query.tz"),
        ({**PERIOD, "group_by": "planet"}, "query.group_by"),
        ({**PERIOD, "currency": "dollars"}, "query.currency"),
        ({"to": "2026-11-10"}, "query.from"),
        ({**PERIOD, "format": "xml"}, "query.format"),
    ],
)
async def test_bad_queries_name_the_field(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    answer = await client.get("/v1/reports/attribution", params=params, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field


async def test_the_report_needs_the_admin_token(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/reports/attribution", params=PERIOD)
    assert answer.status_code == 401
