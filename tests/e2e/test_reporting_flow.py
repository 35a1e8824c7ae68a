"""The marketer's loop over real HTTP: spend imported, visits from three sources, emulated
calls, then cost per call in the report, its CSV and the Google Ads upload file."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import lease, make_pool
from tests.e2e.live import BOUND, live_service
from tests.support import ADMIN, FakeClock

DAY = {"from": "2026-11-26", "to": "2026-11-26"}  # the test clock's day


async def call(client: httpx.AsyncClient, caller: str, to: str, talk: int) -> None:
    """Someone dials `to` through the emulator; the business talks `talk` seconds."""
    body: dict[str, Any] = {
        "from": caller,
        "to": "+" + to,
        "wait": True,
        "script": {"answer_after": 1, "talk": talk},
    }
    answer = await client.post("/emulator/inbound", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "ended"


async def test_spend_and_calls_become_cost_per_call_by_source(
    database_url: str, clock: FakeClock
) -> None:
    async with (
        live_service(database_url, clock) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        imported = await client.post(
            "/v1/spend",
            headers=ADMIN,
            json={
                "rows": [
                    {"day": "2026-11-26", "source": "google", "medium": "cpc",
                     "campaign": "spring", "cost": "100.00", "currency": "USD"},
                    {"day": "2026-11-26", "source": "bing", "medium": "cpc",
                     "campaign": "autumn", "cost": "40", "currency": "USD"},
                ]
            },
        )  # fmt: skip
        assert imported.status_code == 200, imported.text
        assert imported.json()["inserted"] == 2

        await make_pool(client, size=3)
        google = await lease(
            client,
            context={"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring",
                     "gclid": "TEST-GCLID"},
        )  # fmt: skip
        bing = await lease(
            client,
            context={"utm_source": "bing", "utm_medium": "cpc", "utm_campaign": "autumn"},
        )
        direct = await lease(client)
        await call(client, "+16175550001", google["phonenumber"], talk=90)
        await call(client, "+16175550002", google["phonenumber"], talk=45)
        await call(client, "+16175550003", bing["phonenumber"], talk=30)
        await call(client, "+16175550004", direct["phonenumber"], talk=20)

        report = await client.get("/v1/reports/attribution", params=DAY, headers=ADMIN)
        assert report.status_code == 200, report.text
        rows = {row["group"]: row for row in report.json()["rows"]}
        assert list(rows) == ["google", "(direct)", "bing"]
        assert (rows["google"]["calls"], rows["google"]["spend"]) == (2, "100.00")
        assert rows["google"]["cost_per_call"] == "50.00"
        assert rows["google"]["avg_talk_seconds"] == 67.5
        assert (rows["bing"]["calls"], rows["bing"]["cost_per_call"]) == (1, "40.00")
        assert (rows["(direct)"]["calls"], rows["(direct)"]["spend"]) == (1, None)
        assert report.json()["totals"]["cost_per_call"] == "35.00"  # 140 / 4

        csv = await client.get(
            "/v1/reports/attribution", params={**DAY, "format": "csv"}, headers=ADMIN
        )
        assert csv.text.split("\r\n")[1].startswith("google,1,1,2,2,2,67.5,0,0,100.00,50.00,")

        upload = await client.get(
            "/v1/exports/google-ads-conversions.csv", params=DAY, headers=ADMIN
        )
        assert upload.status_code == 200, upload.text
        lines = upload.text.strip().split("\r\n")
        assert lines[0] == (
            "Google Click ID,Conversion Name,Conversion Time,Conversion Value,Conversion Currency"
        )
        # Only the 90 s call talked the default 60 s.
        assert len(lines) == 2
        assert lines[1].startswith("TEST-GCLID,Phone call,2026-11-26 12:00:")
        assert lines[1].endswith("+00:00,0,USD")
