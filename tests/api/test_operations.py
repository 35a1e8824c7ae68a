"""Health, readiness, metrics and logs."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.logs import JsonFormatter
from app.main import create_app
from tests.api.helpers import lease, make_pool
from tests.conftest import make_settings
from tests.support import ADMIN, FakeClock


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_readyz_fails_when_the_database_is_unreachable(clock: FakeClock) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
    app: FastAPI = create_app(make_settings(url), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.headers["content-type"] == "application/problem+json"


async def test_metrics_count_leases_fallbacks_and_latency(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=1)
    first = await lease(client)
    await lease(client, session_id=first["session_id"])
    await lease(client)
    await client.post("/get_tracking_number", json={}, headers={"user-agent": "Googlebot/2.1"})
    text = (await client.get("/metrics")).text
    assert 'calltrack_leases_granted_total{kind="new",pool="default"} 1.0' in text
    assert 'calltrack_leases_granted_total{kind="renewed",pool="default"} 1.0' in text
    assert 'calltrack_fallbacks_served_total{pool="default",reason="pool_exhausted"} 1.0' in text
    assert 'calltrack_fallbacks_served_total{pool="default",reason="bot"} 1.0' in text
    assert (
        'calltrack_request_duration_seconds_count{method="POST",route="/get_tracking_number",'
        'status="200"} 4.0'
    ) in text
    assert 'route="/v1/pools/{name}/numbers"' in text


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything logged during the test, as the service's JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


async def test_logs_are_json_without_email_phone_or_ip(
    client: httpx.AsyncClient, json_log: io.StringIO
) -> None:
    await make_pool(client, size=2)
    await lease(
        client,
        email="jane.doe@example.com",
        phone="+1 212 777 8900",
        fullname="Jane Doe",
        context={"landing_url": "https://x.example/?email=jane.doe@example.com"},
    )
    await client.post("/get_tracking_number", json={"email": "jane.doe@", "phone": "2127778900"})
    await client.delete("/v1/pools/default/numbers/+12565550102", headers=ADMIN)
    logging.getLogger("calltrack.test").warning(
        "caller %s from %s wrote from %s", "+12127778900", "203.0.113.7", "jane.doe@example.com"
    )
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "calltrack.access"]
    assert {line["route"] for line in access} >= {
        "/get_tracking_number",
        "/v1/pools/{name}/numbers/{e164}",
    }
    text = json_log.getvalue()
    for secret in ("jane.doe", "2127778900", "777 8900", "203.0.113.7", "12565550102", "Jane"):
        assert secret not in text
    assert "<email>" in text
    assert "<phone>" in text
    assert "<ip>" in text


async def test_readyz_does_not_wait_for_a_writer(
    client: httpx.AsyncClient, app: FastAPI, backend: str
) -> None:
    # Another connection holds the write lock (SQLite) or a row lock (PostgreSQL) meanwhile.
    state = app.state.ct
    async with state.engine.connect() as writer:
        await writer.execute(text("UPDATE site_key SET name = name"))
        started = time.monotonic()
        ready = await client.get("/readyz")
        elapsed = time.monotonic() - started
        await writer.rollback()
    assert ready.status_code == 200, backend
    assert elapsed < 2.5
