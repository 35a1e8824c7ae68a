"""The dashboard's figures against the reports' hand-worked history (tests/reports/fixture.py)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.db.models import Call, MediaSpend, Pool
from tests.dashboard.page import bars, chart, sign_in, table, titles
from tests.reports import fixture
from tests.support import FakeClock

# Local days 2026-11-10..14, as the attribution tests' period.
WINDOW = {"days": "5", "tz": "UTC"}


@pytest.fixture
def clock() -> FakeClock:
    """Midday on the window's last day."""
    return FakeClock(datetime(2026, 11, 14, 12, 0, tzinfo=UTC))


@pytest.fixture
async def history(app: FastAPI) -> None:
    """The fixture's records, written straight to the database."""
    async with app.state.ct.sessionmaker() as db, db.begin():
        await fixture.build(db)


async def dashboard(client: httpx.AsyncClient, **params: str) -> str:
    """The page's HTML after signing in, asserting a 200."""
    assert (await sign_in(client)).status_code == 303
    answer = await client.get("/dashboard", params={**WINDOW, **params})
    assert answer.status_code == 200, answer.text
    return answer.text


def per_bar(html: str, ident: str) -> dict[str, int]:
    """{tooltip: value} of a chart's bars."""
    svg = chart(html, ident)
    return {
        title: int(str(b.get("data-value")))
        for title, b in zip(titles(svg), bars(svg), strict=True)
    }


@pytest.mark.usefixtures("history")
async def test_calls_by_source_per_day(client: httpx.AsyncClient) -> None:
    html = await dashboard(client)
    # C1, C2 (google) and C6 (newsletter) on the 10th; C3 on the 11th; C4 (bing) and C7
    # (facebook.com) on the 12th; C5, credited to nothing, on the 13th; none on the 14th.
    assert per_bar(html, "chart-sources") == {
        "google, 10 Nov: 2 calls": 2,
        "newsletter, 10 Nov: 1 call": 1,
        "google, 11 Nov: 1 call": 1,
        "bing, 12 Nov: 1 call": 1,
        "facebook.com, 12 Nov: 1 call": 1,
        "(no source), 13 Nov: 1 call": 1,
    }
    svg = chart(html, "chart-sources")
    totals: Counter[str] = Counter()
    for rect in bars(svg):
        totals[str(rect.get("data-series"))] += int(str(rect.get("data-value")))
    assert totals == {"google": 3, "bing": 1, "facebook.com": 1, "newsletter": 1, "(no source)": 1}
    legend = [t for g in svg.iter() if g.get("class") == "legend-item" for t in g.itertext()]
    # The busiest first; ties by name; calls without a source last.
    assert legend[::2] == ["google", "bing", "facebook.com", "newsletter", "(no source)"]


@pytest.mark.usefixtures("history")
async def test_the_days_are_the_chosen_zones(client: httpx.AsyncClient, clock: FakeClock) -> None:
    clock.now = datetime(2026, 11, 14, 18, 0, tzinfo=UTC)  # 13:00 in New York
    html = await dashboard(client, tz="America/New_York")
    # C6 (03:10 UTC on the 10th) was still the 9th in New York: out of the window.
    found = per_bar(html, "chart-sources")
    assert "newsletter, 10 Nov: 1 call" not in found
    assert found["google, 10 Nov: 2 calls"] == 2
    assert sum(found.values()) == 6


@pytest.mark.usefixtures("history")
async def test_cost_per_call_by_campaign(client: httpx.AsyncClient) -> None:
    html = await dashboard(client)
    svg = chart(html, "chart-campaigns")
    # As the attribution report by campaign: spring 150 over 2 calls, autumn 60 over 1, and
    # the untagged calls' 30 over 4; dearest first.
    texts = ["".join(t.itertext()) for t in svg.iter() if t.get("class") == "value"]
    assert texts == [
        "75.00 USD per call \u00b7 2 calls",
        "60.00 USD per call \u00b7 1 call",
        "7.50 USD per call \u00b7 4 calls",
    ]
    widths = [float(str(r.get("width"))) for r in bars(svg)]
    assert widths[1] / widths[0] == pytest.approx(60 / 75, abs=1e-3)
    assert widths[2] / widths[0] == pytest.approx(7.5 / 75, abs=1e-3)
    assert "(no campaign)" in "".join(svg.itertext())
    # The tiles: 7 calls, 240 spent, 34.29 a call.
    assert "240.00 USD" in html
    assert "34.29 USD" in html


@pytest.mark.usefixtures("history")
async def test_spend_without_calls_is_shown_as_no_calls(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    # The 14th alone: bing/autumn spent 20 and nobody called.
    html = await dashboard(client, days="1")
    svg = chart(html, "chart-campaigns")
    texts = ["".join(t.itertext()) for t in svg.iter() if t.get("class") == "value"]
    assert texts == ["no calls \u00b7 20.00 USD spent"]
    assert bars(svg) == []
    assert "No calls in this window" in "".join(chart(html, "chart-sources").itertext())
    assert "No calls in this window" in "".join(chart(html, "chart-answered").itertext())


@pytest.mark.usefixtures("history")
async def test_answered_versus_missed(client: httpx.AsyncClient) -> None:
    html = await dashboard(client)
    # Only C2 went unanswered.
    assert per_bar(html, "chart-answered") == {
        "answered, 10 Nov: 2 calls": 2,
        "missed, 10 Nov: 1 call": 1,
        "answered, 11 Nov: 1 call": 1,
        "answered, 12 Nov: 2 calls": 2,
        "answered, 13 Nov: 1 call": 1,
    }
    assert "<strong>6</strong> answered \u00b7 <strong>1</strong> missed" in html


@pytest.mark.usefixtures("history")
async def test_pool_utilisation(client: httpx.AsyncClient) -> None:
    html = await dashboard(client)
    rows = table(html, "pools")
    assert rows[0] == ["Pool", "Numbers", "Leased now", "Peak", "Leases", "Needed", "Fallbacks"]
    # Leases never overlap within a pool; main's four and brand's two began in the window.
    assert rows[1:] == [
        ["brand", "1", "0", "1", "2", "1", "0"],
        ["main", "2", "0", "1", "4", "1", "0"],
    ]
    svg = chart(html, "chart-pools")
    assert [r.get("data-value") for r in bars(svg, "track")] == ["1", "2"]


@pytest.mark.usefixtures("history")
async def test_latest_calls_mask_the_caller(client: httpx.AsyncClient) -> None:
    html = await dashboard(client)
    rows = table(html, "calls")
    assert rows[0][:3] == ["Started", "Tracking number", "Caller"]
    # Newest first: C5, C7, C4, C3, C2, C1, C6.
    assert [r[0] for r in rows[1:]] == [
        "13 Nov 12:00",
        "12 Nov 16:30",
        "12 Nov 15:20",
        "11 Nov 09:30",
        "10 Nov 11:10",
        "10 Nov 10:05",
        "10 Nov 03:10",
    ]
    assert rows[1] == [
        "13 Nov 12:00", "+12565550101", "\u2022\u2022\u2022 0100", "\u2014", "\u2014", "\u2014",
        "completed", "answered", "0:45", "none",
    ]  # fmt: skip
    # C3: google by its gclid, no campaign.
    assert rows[4][3:] == ["google", "cpc", "\u2014", "completed", "answered", "1:00", "dni"]
    assert rows[5][7:9] == ["missed", "0:00"]  # C2
    assert {r[2] for r in rows[1:]} == {"\u2022\u2022\u2022 0100"}
    # The caller (+16175550100) appears nowhere in full, in no spelling.
    for spelling in ("6175550100", "617-555", "617) 555", "617 555", "5550100"):
        assert spelling not in html, spelling


async def add_call(app: FastAPI, **fields: object) -> None:
    """One more call on the 14th, in pool main."""
    async with app.state.ct.sessionmaker() as db, db.begin():
        pool_id = (await db.execute(select(Pool.id).where(Pool.name == "main"))).scalar_one()
        started = fixture.at(14, 9)
        values: dict[str, object] = {
            "provider": "cloudonix",
            "provider_call_id": "C-extra",
            "direction": "inbound",
            "from_number": "+442079460958",
            "to_number": "+12565550102",
            "pool_id": pool_id,
            "attribution": "dni",
            "status": "completed",
            "started_at": started,
            "created_at": started,
            "updated_at": started,
        }
        db.add(Call(**{**values, **fields}))


@pytest.mark.usefixtures("history")
async def test_visitor_written_values_are_escaped(app: FastAPI, client: httpx.AsyncClient) -> None:
    hostile = '<script>alert("src")</script>'
    await add_call(app, source=hostile, campaign='"><img src=x onerror=alert(1)>', medium="<b>")
    html = await dashboard(client)
    assert "<script" not in html
    assert "<img" not in html
    assert "<b>" not in html
    svg = chart(html, "chart-sources")
    assert hostile in {r.get("data-series") for r in bars(svg)}
    assert any(r[3] == hostile for r in table(html, "calls"))
    assert "0958" in html
    assert "2079460958" not in html


@pytest.mark.usefixtures("history")
async def test_the_rest_of_many_sources_is_other(app: FastAPI, client: httpx.AsyncClient) -> None:
    for i, source in enumerate(("s1", "s2", "s3")):
        await add_call(app, provider_call_id=f"C-many-{i}", source=source)
    html = await dashboard(client)
    series = {r.get("data-series") for r in bars(chart(html, "chart-sources"))}
    # google (3) first, then seven sources of one call: the first five by name, and the
    # rest (s3 and the call without a source) as one.
    assert series == {"google", "bing", "facebook.com", "newsletter", "s1", "s2", "other"}
    svg = chart(html, "chart-sources")
    assert "other, 13 Nov: 1 call" in titles(svg)
    assert "other, 14 Nov: 1 call" in titles(svg)


@pytest.mark.usefixtures("history")
async def test_spend_in_two_currencies_is_shown_in_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with app.state.ct.sessionmaker() as db, db.begin():
        made = fixture.at(1, 0)
        db.add(
            MediaSpend(
                day=date(2026, 11, 12),
                source="bing",
                medium="cpc",
                campaign="winter",
                cost_micros=9_000_000,
                currency="EUR",
                created_at=made,
                updated_at=made,
            )
        )
    html = await dashboard(client)
    assert "9.00 EUR" in html
    link = '<a href="/dashboard?days=5&amp;tz=UTC&amp;currency=USD">USD</a>'
    assert f"Spend in EUR; also imported in {link}." in html
    html = await dashboard(client, currency="usd")
    assert "240.00 USD" in html
    assert "9.00 EUR" not in html
    assert '<input type="hidden" name="currency" value="USD">' in html
