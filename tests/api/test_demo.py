"""The demo site: its page and pool, its assets, and the panel's view of an emulated call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from app import assets
from app.assets import compact_js
from app.main import create_app
from tests.api.helpers import lease
from tests.calls.helpers import CALLER
from tests.conftest import make_settings
from tests.e2e.live import BOUND, live_service
from tests.support import ADMIN, FakeClock

STATIC = Path(__file__).resolve().parents[2] / "app" / "static"
BUSINESS = "+12125550100"
DEMO_NUMBERS = [f"+1646555{n:04d}" for n in range(120, 140)]
PAGES = ("/demo", "/demo/services")
CONTEXT = {
    "landing_url": "https://demo.example/?utm_source=google&utm_medium=cpc&gclid=DEMO-1",
    "utm_source": "google",
    "utm_medium": "cpc",
    "utm_campaign": "spring",
    "gclid": "DEMO-1",
}


async def dni_version(client: httpx.AsyncClient) -> str:
    """The served dni.js version (the ETag of its identity encoding)."""
    response = await client.get("/dni.js", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    version = response.headers["etag"].strip('"')
    assert version == assets.asset("dni.js").version
    return version


async def demo_pool(client: httpx.AsyncClient) -> tuple[dict[str, Any], int]:
    """The demo pool as stored and its number of active numbers."""
    pool = await client.get("/v1/pools/demo", headers=ADMIN)
    assert pool.status_code == 200, pool.text
    stats = await client.get("/v1/pools/demo/stats", headers=ADMIN)
    assert stats.status_code == 200, stats.text
    found: dict[str, Any] = pool.json()
    return found, int(stats.json()["size"])


async def pool_names(client: httpx.AsyncClient) -> list[str]:
    """The names of every pool."""
    listed = await client.get("/v1/pools", headers=ADMIN)
    assert listed.status_code == 200
    return sorted(p["name"] for p in listed.json())


async def leased_numbers(client: httpx.AsyncClient, count: int) -> set[str]:
    """Lease `count` numbers of the demo pool for new visitors; the E.164 numbers leased."""
    got = set()
    for _ in range(count):
        body = await lease(client, pool="demo")
        assert body["tracked"] is True, body
        got.add("+" + body["phonenumber"])
    return got


# --- the page and its pool -------------------------------------------------------------------


async def test_demo_pages_pin_the_current_snippet_with_a_csp(client: httpx.AsyncClient) -> None:
    version = await dni_version(client)
    for path in PAGES:
        page = await client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"] == "text/html; charset=utf-8", path
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp, path
        assert "frame-ancestors 'none'" in csp, path
        assert page.headers["x-content-type-options"] == "nosniff", path
        assert f'src="/dni.js?v={version}"' in page.text, path
        assert "{{" not in page.text, path
        assert 'data-pool="demo"' in page.text, path
    # The version the page pins is the one served as immutable, in either encoding.
    for encoding in ("identity", "gzip"):
        pinned = await client.get(f"/dni.js?v={version}", headers={"Accept-Encoding": encoding})
        assert pinned.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert pinned.content == compact_js((STATIC / "dni.js").read_bytes())


async def test_demo_page_revalidates_with_its_etag(client: httpx.AsyncClient) -> None:
    first = await client.get("/demo")
    assert first.headers["cache-control"] == "no-cache"
    again = await client.get("/demo/services", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    # Each encoding revalidates with its own ETag, never with the other's.
    plain = await client.get("/demo", headers={"Accept-Encoding": "identity"})
    zipped = await client.get("/demo", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["etag"] == plain.headers["etag"][:-1] + '-gz"'
    for encoding, etag, status in (
        ("identity", plain.headers["etag"], 304),
        ("gzip", zipped.headers["etag"], 304),
        ("gzip", plain.headers["etag"], 200),
        ("identity", zipped.headers["etag"], 200),
    ):
        answer = await client.get(
            "/demo", headers={"Accept-Encoding": encoding, "If-None-Match": etag}
        )
        assert answer.status_code == status, (encoding, etag)


async def test_first_visit_creates_the_demo_pool_and_later_ones_change_nothing(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/v1/pools/demo", headers=ADMIN)).status_code == 404
    assert (await client.get("/demo")).status_code == 200
    pool, size = await demo_pool(client)
    assert size == 20
    assert (pool["destination"], pool["fallback_number"]) == (BUSINESS, BUSINESS)
    for path in PAGES:
        assert (await client.get(path)).status_code == 200
    assert await demo_pool(client) == (pool, 20)
    assert await pool_names(client) == ["demo"]
    assert await leased_numbers(client, 20) == set(DEMO_NUMBERS)


async def test_demo_pool_leaves_out_numbers_another_pool_holds(
    client: httpx.AsyncClient,
) -> None:
    taken = [DEMO_NUMBERS[0], DEMO_NUMBERS[7], DEMO_NUMBERS[-1]]
    created = await client.post(
        "/v1/pools",
        json={"name": "other", "destination": BUSINESS, "fallback_number": BUSINESS},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    added = await client.post("/v1/pools/other/numbers", json={"numbers": taken}, headers=ADMIN)
    assert added.status_code == 201, added.text

    assert (await client.get("/demo/services")).status_code == 200
    _, size = await demo_pool(client)
    assert size == 17
    other = await client.get("/v1/pools/other/stats", headers=ADMIN)
    assert other.json()["size"] == 3
    assert await leased_numbers(client, 17) == set(DEMO_NUMBERS) - set(taken)
    # Pool exhausted: the 18th visitor sees the business number, never another pool's.
    spare = await lease(client, pool="demo")
    assert spare["tracked"] is False
    assert spare["phonenumber"] == BUSINESS.removeprefix("+")


async def test_concurrent_first_visits_make_one_pool(client: httpx.AsyncClient) -> None:
    pages = await asyncio.gather(*(client.get(PAGES[i % 2]) for i in range(4)))
    assert [page.status_code for page in pages] == [200] * 4
    assert await pool_names(client) == ["demo"]
    _, size = await demo_pool(client)
    assert size == 20


# --- assets ----------------------------------------------------------------------------------


async def test_demo_script_and_stylesheet_are_served(client: httpx.AsyncClient) -> None:
    # Scripts are served compacted, the stylesheet as written.
    script = compact_js((STATIC / "demo.js").read_bytes())
    assert script != (STATIC / "demo.js").read_bytes()
    stylesheet = (STATIC / "demo.css").read_bytes()
    for name, media, body in (
        ("demo.js", "text/javascript", script),
        ("demo.css", "text/css", stylesheet),
    ):
        response = await client.get(f"/demo/assets/{name}", headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200, name
        assert response.headers["content-type"] == f"{media}; charset=utf-8", name
        assert response.headers["content-encoding"] == "gzip", name
        assert response.content == body, name
        assert response.headers["x-content-type-options"] == "nosniff", name


async def test_only_the_demo_assets_are_served(client: httpx.AsyncClient) -> None:
    for name in (
        "other.txt",
        "dni.js",
        "demo.html",
        "demo.jsx",
        "..%2Fdemo.html",
        "..%2F..%2Fsettings.py",
    ):
        response = await client.get(f"/demo/assets/{name}")
        assert response.status_code in (404, 422), name
        assert response.headers["content-type"] == "application/problem+json", name
        assert "{{dni_version}}" not in response.text, name


# --- the panel's call view -------------------------------------------------------------------


async def test_call_view_refuses_other_machines_without_the_admin_token(
    client: httpx.AsyncClient,
) -> None:
    # The test client comes from 203.0.113.7, not from this machine.
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
        refused = await client.get("/demo/calls/abc123", headers=headers)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["field"] == "authorization"


async def test_call_view_of_an_unknown_call_is_a_404(client: httpx.AsyncClient) -> None:
    missing = await client.get("/demo/calls/abc123", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["field"] == "token"
    malformed = await client.get("/demo/calls/a.b", headers=ADMIN)
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"


async def test_call_view_shows_how_an_emulated_call_was_credited(
    database_url: str, clock: FakeClock
) -> None:
    async with (
        live_service(database_url, clock) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        assert (await client.get("/demo")).status_code == 200
        held = await lease(client, pool="demo", context=CONTEXT)
        assert held["tracked"] is True
        to = "+" + held["phonenumber"]
        assert to in DEMO_NUMBERS
        # As the demo panel does: from this machine, no token needed.
        placed = await client.post(
            "/emulator/inbound",
            json={"from": CALLER, "to": to, "wait": True, "script": {"talk": 42}},
        )
        assert placed.status_code == 200, placed.text
        outcome = placed.json()
        assert outcome["state"] == "ended", outcome
        assert outcome["dial"]["number"] == BUSINESS
        shown = await client.get(f"/demo/calls/{outcome['token']}")
        assert shown.status_code == 200, shown.text
        assert shown.headers["cache-control"] == "no-store"
        call = shown.json()
        assert call["attribution"] == "dni"
        assert call["pool"] == "demo"
        assert call["to_number"] == to
        assert (call["source"], call["medium"], call["campaign"]) == ("google", "cpc", "spring")
        assert call["gclid"] == "DEMO-1"
        assert call["landing_url"] == CONTEXT["landing_url"]
        assert call["status"] == "completed"
        assert call["talk_seconds"] == 42
        assert call["first_time"] is True


# --- with the real Cloudonix -----------------------------------------------------------------


async def test_with_cloudonix_the_demo_is_absent_and_the_snippet_served(
    database_url: str, clock: FakeClock
) -> None:
    settings = make_settings(
        database_url,
        cloudonix_api_key="XI" + "a" * 32,
        cloudonix_domain="acme.cloudonix.net",
    )
    assert settings.voice_provider == "cloudonix"
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in (*PAGES, "/demo/assets/demo.js", "/demo/calls/abc123", "/emulator/calls"):
                response = await client.get(path, headers=ADMIN)
                assert response.status_code == 404, path
            script = await client.get("/dni.js")
            assert script.status_code == 200
            assert script.content == compact_js((STATIC / "dni.js").read_bytes())
            assert (await client.get("/v1/pools", headers=ADMIN)).json() == []
