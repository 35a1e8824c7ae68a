"""Who is asking: rate limits per visitor IP, site keys of website backends, CORS."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from app.main import create_app
from tests.api.helpers import lease, make_pool
from tests.conftest import make_settings
from tests.support import ADMIN, FakeClock


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


def random_ip() -> str:
    """An address no other test run uses, so shared Redis counters do not collide."""
    return str(ipaddress.IPv6Address(b"\x20\x01\x0d\xb8" + secrets.token_bytes(12)))


async def _burst(client: httpx.AsyncClient, count: int, **kwargs: Any) -> list[httpx.Response]:
    return [await client.post("/get_tracking_number", **kwargs) for _ in range(count)]


async def test_browser_over_the_limit_gets_429_with_retry_after(
    database_url: str, clock: FakeClock
) -> None:
    async with serve(database_url, clock, peer=random_ip(), public_rate_limit="3/minute") as (
        _,
        client,
    ):
        await make_pool(client, size=10)
        responses = await _burst(client, 4, json={})
        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        limited = responses[-1]
        assert limited.headers["content-type"] == "application/problem+json"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["status"] == 429
        # A browser cannot claim another IP through the body.
        spoofed = await client.post("/get_tracking_number", json={"context": {"ip": "192.0.2.9"}})
        assert spoofed.status_code == 429
        # Ops endpoints are not rate limited.
        assert (await client.get("/v1/pools", headers=ADMIN)).status_code == 200


async def test_limit_is_shared_through_redis_by_two_servers(
    database_url: str, clock: FakeClock
) -> None:
    ip = random_ip()
    settings = {"public_rate_limit": "4/minute", "redis_url": "redis://127.0.0.1:6379/0"}
    async with serve(database_url, clock, peer=ip, **settings) as (_, first):
        await make_pool(first, size=10)
        async with serve(database_url, clock, peer=ip, **settings) as (_, second):
            codes = []
            for client in (first, second, first, second, first):
                codes.append((await client.post("/get_tracking_number", json={})).status_code)
            assert codes == [200, 200, 200, 200, 429]


async def test_site_key_lets_a_backend_speak_for_each_visitor(
    database_url: str, clock: FakeClock
) -> None:
    async with serve(
        database_url,
        clock,
        public_rate_limit="2/minute",
        ip_hash_key="a-key-for-hashing-visitor-ips",
    ) as (_, client):
        await make_pool(client, size=10)
        created = await client.post(
            "/v1/site-keys", json={"name": "www.shop.example"}, headers=ADMIN
        )
        assert created.status_code == 201
        key = created.json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        # One backend address, many visitors: each visitor has a limit of its own.
        for visitor in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            context = {"ip": visitor, "user_agent": "Mozilla/5.0 (iPhone)"}
            codes = [
                (
                    await client.post(
                        "/get_tracking_number", json={"context": context}, headers=auth
                    )
                ).status_code
                for _ in range(3)
            ]
            assert codes == [200, 200, 429]
        answer = await client.post(
            "/get_tracking_number",
            json={"context": {"ip": "192.0.2.50", "user_agent": "Mozilla/5.0 (Android)"}},
            headers=auth,
        )
        session = (
            await client.get(f"/v1/sessions/{answer.json()['session_id']}", headers=ADMIN)
        ).json()
        assert session["site_key"] == "www.shop.example"
        assert session["context"]["user_agent"] == "Mozilla/5.0 (Android)"
        assert session["context"]["ip_hash"] is not None
        assert "192.0.2.50" not in str(session)
        # A bot passed on by the backend is recognised from the context's user agent.
        bot = await client.post(
            "/get_tracking_number",
            json={"context": {"ip": "192.0.2.60", "user_agent": "AhrefsBot/7.0"}},
            headers=auth,
        )
        assert bot.json()["fallback_reason"] == "bot"


async def test_wrong_or_revoked_site_key_is_refused(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    wrong = await client.post(
        "/get_tracking_number", json={}, headers={"Authorization": "Bearer ctk_not-a-key"}
    )
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    created = (await client.post("/v1/site-keys", json={"name": "a"}, headers=ADMIN)).json()
    auth = {"Authorization": f"Bearer {created['key']}"}
    assert (await client.post("/get_tracking_number", json={}, headers=auth)).status_code == 200
    listed = (await client.get("/v1/site-keys", headers=ADMIN)).json()
    assert listed[0]["prefix"] == created["key"][:12]
    assert "key" not in listed[0]
    revoked = await client.delete(f"/v1/site-keys/{created['id']}", headers=ADMIN)
    assert revoked.json()["revoked_at"] is not None
    assert (await client.post("/get_tracking_number", json={}, headers=auth)).status_code == 401
    assert (await client.delete("/v1/site-keys/999", headers=ADMIN)).status_code == 404


async def test_ip_is_kept_only_as_a_keyed_hash(database_url: str, clock: FakeClock) -> None:
    async with serve(database_url, clock, peer="198.51.100.77", ip_hash_key="k" * 32) as (
        _,
        client,
    ):
        await make_pool(client)
        body = await lease(client)
        stored = (await client.get(f"/v1/sessions/{body['session_id']}", headers=ADMIN)).json()
        assert len(stored["context"]["ip_hash"]) == 64
        assert "198.51.100.77" not in str(stored)


async def test_cors_answers_only_configured_origins(database_url: str, clock: FakeClock) -> None:
    async with serve(database_url, clock, cors_origins="https://shop.example") as (_, client):
        await make_pool(client)
        preflight = {"access-control-request-method": "POST"}
        allowed = await client.options(
            "/get_tracking_number", headers={"origin": "https://shop.example", **preflight}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        denied = await client.options(
            "/get_tracking_number", headers={"origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in denied.headers
        post = await client.post(
            "/get_tracking_number", json={}, headers={"origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in post.headers


async def test_no_cors_headers_without_configured_origins(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    response = await client.post(
        "/get_tracking_number", json={}, headers={"origin": "https://shop.example"}
    )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
