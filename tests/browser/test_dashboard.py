"""The ops dashboard in real Chromium: signed in through its form, every panel drawn from a
fortnight of calls and spend, nothing loaded from elsewhere, no CSP violation."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.db.models import Pool, TrackingNumber
from app.state import utc_now
from tests.api.helpers import make_pool
from tests.browser.harness import WAIT_MS, Tab
from tests.dashboard import history
from tests.support import ADMIN_TOKEN, BACKENDS

DOCS = Path(__file__).resolve().parents[2] / "docs"
DAYS = 14
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"}
# Every CSP violation the page reports, gathered before any of its own code could run.
WATCH_CSP = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The dashboard's SQL, in the browser too, on every database."""
    return str(request.param)


async def fortnight(ops: httpx.AsyncClient, base: str, app: FastAPI) -> history.Built:
    """Two pools, 14 days of history in one, and live leases (and a fallback) right now."""
    await make_pool(ops, "website", size=8)
    await make_pool(ops, "print", size=1, start=201, source="print", medium="offline")
    async with app.state.ct.sessionmaker() as db, db.begin():
        found = await db.execute(
            select(TrackingNumber.pool_id, TrackingNumber.id, TrackingNumber.e164)
            .join(Pool, Pool.id == TrackingNumber.pool_id)
            .where(Pool.name == "website")
            .order_by(TrackingNumber.id)
        )
        rows = found.all()
        numbers = [(int(row[1]), str(row[2])) for row in rows]
        built = await history.build(
            db, now=utc_now(), days=DAYS, pool_id=int(rows[0][0]), numbers=numbers
        )
    async with httpx.AsyncClient(base_url=base, headers=BROWSER) as visitor:
        for pool, source in (("website", "google"), ("website", "facebook"), ("website", "bing")):
            body = {"pool": pool, "context": {"utm_source": source, "utm_medium": "cpc"}}
            assert (await visitor.post("/get_tracking_number", json=body)).status_code == 200
        served = [
            (await visitor.post("/get_tracking_number", json={"pool": "print"})).json()["tracked"]
            for _ in range(2)
        ]
        assert served == [True, False]  # one number: the second visit got the fallback
    return built


async def count(tab: Tab, selector: str) -> int:
    """How many elements match."""
    return await tab.page.locator(selector).count()


async def test_the_dashboard_draws_every_panel(
    base: str, service: tuple[str, FastAPI], ops: httpx.AsyncClient, tab: Tab, tmp_path: Path
) -> None:
    built = await fortnight(ops, base, service[1])
    asked: list[str] = []
    tab.page.on("request", lambda request: asked.append(request.url))
    await tab.page.add_init_script(WATCH_CSP)

    await tab.page.goto(base + "/dashboard")
    assert await count(tab, "svg.chart") == 0
    await tab.page.fill("#token", "not-the-token-at-all")
    await tab.page.click("button[type=submit]")
    await tab.page.wait_for_selector(".error", timeout=WAIT_MS)
    assert "not right" in await tab.text(".error")
    tab.expected_errors("401")  # Chromium logs the refused form post
    await tab.page.fill("#token", ADMIN_TOKEN)
    await tab.page.click("button[type=submit]")
    await tab.page.wait_for_selector("#chart-sources", timeout=WAIT_MS)
    assert tab.page.url == base + "/dashboard"

    # The window form: a fortnight.
    await tab.page.select_option("select[name=days]", str(DAYS))
    await tab.page.fill("input[name=tz]", "UTC")
    await tab.page.click(".window button[type=submit]")
    await tab.page.wait_for_url(f"{base}/dashboard?days={DAYS}&tz=UTC", timeout=WAIT_MS)

    assert await count(tab, "#chart-sources rect.bar") == len(built.by_day_source)
    assert await count(tab, "#chart-sources .legend-item") == len(history.SOURCES)
    days_drawn = len(built.answered) + len(built.missed)
    assert await count(tab, "#chart-answered rect.bar") == days_drawn
    assert await count(tab, "#chart-answered .legend-item") == 2
    # Costed: brand-search, emergency-repairs and spring-promo. Shown without a bar: the
    # newsletter's issue and the untagged calls (no spend), and retargeting (no calls).
    assert await count(tab, "#chart-campaigns rect.bar") == 3
    texts = await tab.page.locator("#chart-campaigns text.value").all_text_contents()
    assert len(texts) == 6
    assert [t for t in texts if t.startswith("no calls")] == [texts[3]]
    assert sum(t.startswith("no spend") for t in texts) == 2
    assert await count(tab, "#chart-pools rect.track") == 2
    pools = await tab.page.locator("table.pools tbody tr").all_inner_texts()
    assert [row.split("\t")[:3] for row in pools] == [["print", "1", "1"], ["website", "8", "3"]]
    assert pools[0].split("\t")[-1] == "1"  # the fallback served
    assert await count(tab, "table.calls tbody tr") == 20
    shown = await tab.page.content()
    assert not [caller for caller in built.callers if caller[2:] in shown]
    total = sum(built.by_day_source.values())
    assert (await tab.text(".tile:first-child strong")).replace(",", "") == str(total)
    # The stylesheet applied; the page asked nothing of any other origin, broke no policy.
    assert (
        await tab.page.evaluate("getComputedStyle(document.querySelector('.grid')).display")
        == "grid"
    )
    assert await tab.page.evaluate("window.__csp") == []
    assert asked
    assert [url for url in asked if not url.startswith(base + "/")] == []

    shot = tmp_path / "dashboard.png"
    await tab.page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("CALLTRACK_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / "dashboard.png")

    await tab.page.click(".logout button")
    await tab.page.wait_for_selector("#token", timeout=WAIT_MS)
    assert await count(tab, "svg.chart") == 0
