"""The Cloudonix adapter against the emulator, served by uvicorn on 127.0.0.1 over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

pytest.importorskip("app.emulator", reason="the emulator is being written in parallel")

from app.emulator import EmulatorConfig, create_emulator
from app.providers.voice.base import (
    CallInfo,
    CallNotFound,
    CallState,
    Originate,
    ProviderRejected,
)
from app.providers.voice.cloudonix import CloudonixProvider
from app.providers.voice.cxml import Response
from app.providers.voice.pacing import Pacer

KEY = "XI" + "emulatorkey0123456789abcdef0123"
DOMAIN = "calltrack.emulator"
WEBHOOK_TOKEN = "webhook-token-0123456789"
AGENT = "+15551230001"
CALLER_ID = "+15559990000"
# Bound of every wait in this module, in real seconds.
DEADLINE = 15.0


def fake_service(request: httpx.Request) -> httpx.Response:
    """The call-tracking service as the emulator sees it: accepts every hook, ends every call."""
    if request.url.path.endswith("/voice"):
        body = Response().hangup().render()
        return httpx.Response(200, text=body, headers={"Content-Type": "application/xml"})
    return httpx.Response(204)


@asynccontextmanager
async def serve(**config: Any) -> AsyncIterator[str]:
    """Serve an emulator on a free 127.0.0.1 port; yields the base URL of its REST API."""
    values: dict[str, Any] = {
        "api_key": KEY,
        "domain": DOMAIN,
        "webhook_token": WEBHOOK_TOKEN,
        "transport": httpx.MockTransport(fake_service),
    }
    values.update(config)
    app = create_emulator(EmulatorConfig(**values), prefix="/emulator")
    # Bound before uvicorn starts, so no other process can take the port in between.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", ws="none", http="h11")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(DEADLINE):
            while not server.started:
                if task.done():
                    task.result()  # raises whatever stopped the server
                    raise RuntimeError("the emulator stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/emulator"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, DEADLINE)
        sock.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The app's shared client; trust_env=False keeps any proxy away from 127.0.0.1."""
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


def adapter(
    http: httpx.AsyncClient, base_url: str, *, limit: int = 1000, period: float = 1.0, **kw: Any
) -> CloudonixProvider:
    """An adapter with a real clock, pointed at the emulator."""
    values: dict[str, Any] = {"api_key": KEY, "max_elapsed": DEADLINE, "timeout": 5.0}
    values.update(kw)
    pacer = Pacer(limit, period, margin=0.05)
    return CloudonixProvider(http, base_url=base_url, domain=DOMAIN, pacer=pacer, **values)


def agent_call(cxml: str) -> Originate:
    """Ring the agent, then run `cxml`."""
    return Originate(destination=AGENT, caller_id=CALLER_ID, cxml=cxml, timeout_seconds=30)


async def until(
    probe: Callable[[], Awaitable[CallInfo]], done: Callable[[CallInfo], bool]
) -> CallInfo:
    """Poll `probe` until `done`, within the module's deadline."""
    async with asyncio.timeout(DEADLINE):
        while True:
            info = await probe()
            if done(info):
                return info
            await asyncio.sleep(0.05)


async def test_originate_get_and_hangup(http: httpx.AsyncClient) -> None:
    async with serve(rate_requests=1000, rate_period=1.0) as base_url:
        provider = adapter(http, base_url)
        cxml = Response().say("Connecting you now.").pause(60).render()
        placed = await provider.originate(agent_call(cxml))
        assert placed.state is CallState.QUEUED
        assert placed.direction == "outbound-api"
        assert placed.call_id

        info = await provider.get_call(placed.call_id)
        assert info.call_id == placed.call_id
        assert info.state in {CallState.QUEUED, CallState.RINGING}
        assert info.destination == AGENT
        assert info.caller_id == CALLER_ID
        assert info.started_at is not None
        assert info.started_at.tzinfo is not None

        await provider.hangup(placed.call_id, reason="test")
        ended = await until(lambda: provider.get_call(placed.call_id), lambda i: i.state.final)
        assert ended.state is CallState.CANCELED
        assert ended.ended_at is not None
        assert ended.answered_at is None

        await provider.hangup(placed.call_id)  # already ended: still fine
        await provider.hangup("0123456789abcdef")  # unknown: still fine
        with pytest.raises(CallNotFound):
            await provider.get_call("0123456789abcdef")


async def test_answered_call_completes(http: httpx.AsyncClient) -> None:
    # speed=20: the agent's default two seconds of ringing pass in a tenth of a second.
    async with serve(rate_requests=1000, rate_period=1.0, speed=20.0) as base_url:
        provider = adapter(http, base_url)
        cxml = Response().say("Connecting you now.").pause(600).render()
        placed = await provider.originate(agent_call(cxml))

        async def probe() -> CallInfo:
            return await provider.get_call(placed.call_id)

        answered = await until(probe, lambda i: i.state is CallState.ANSWERED)
        assert answered.answered_at is not None
        assert answered.ended_at is None
        await provider.hangup(placed.call_id)
        ended = await until(probe, lambda i: i.state.final)
        assert ended.state is CallState.COMPLETED
        assert ended.ended_at is not None
        assert ended.answered_at is not None
        assert ended.ended_at >= ended.answered_at


async def test_wrong_key_is_rejected(http: httpx.AsyncClient) -> None:
    async with serve() as base_url:
        provider = adapter(http, base_url, api_key="XI" + "wrong" * 6 + "1234")
        with pytest.raises(ProviderRejected) as caught:
            await provider.originate(agent_call(Response().hangup().render()))
        assert caught.value.status == 401
        assert "lacks rights" in str(caught.value)


async def test_emulator_429_is_retried_until_it_succeeds(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # The adapter paces far looser (1000/s) than the emulator allows (3/s).
    async with serve(rate_requests=3, rate_period=1.0) as base_url:
        provider = adapter(http, base_url, max_attempts=10)
        with caplog.at_level(logging.WARNING, logger="calltrack.voice"):
            placed = await provider.originate(agent_call(Response().pause(60).render()))
            infos = await asyncio.gather(*(provider.get_call(placed.call_id) for _ in range(6)))
        assert all(info.call_id == placed.call_id for info in infos)
        retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
        assert retries
        assert all("HTTP 429" in message for message in retries)
        await provider.hangup(placed.call_id)


async def test_matching_pacer_never_meets_a_429(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(rate_requests=3, rate_period=1.0) as base_url:
        provider = adapter(http, base_url, limit=3, period=1.0)
        with caplog.at_level(logging.WARNING, logger="calltrack.voice"):
            placed = await provider.originate(agent_call(Response().pause(60).render()))
            await asyncio.gather(*(provider.get_call(placed.call_id) for _ in range(5)))
            await provider.hangup(placed.call_id)
        assert [r for r in caplog.records if r.name == "calltrack.voice"] == []
