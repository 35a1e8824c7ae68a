"""Fixtures: a recording receiver, an emulator talking to it in-process, a client for both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from app.emulator import Emulator, EmulatorConfig, create_emulator
from tests.emulator.support import API_KEY, DOMAIN, WEBHOOK_TOKEN, Receiver, fixed_clock

MakeEmulator = Callable[..., Emulator]


@pytest.fixture
def receiver() -> Receiver:
    """The service's stand-in."""
    return Receiver()


@pytest.fixture
async def make_emulator(receiver: Receiver) -> AsyncIterator[MakeEmulator]:
    """Build emulators wired to the receiver in-process; closed after the test."""
    made: list[Emulator] = []

    def make(**overrides: object) -> Emulator:
        values: dict[str, object] = {
            "api_key": API_KEY,
            "domain": DOMAIN,
            "webhook_token": WEBHOOK_TOKEN,
            "service_url": "http://service.test",
            "speed": 200.0,
            "clock": fixed_clock,
            "transport": httpx.ASGITransport(app=receiver.app),
        }
        values.update(overrides)
        emulator = create_emulator(EmulatorConfig(**values))  # type: ignore[arg-type]
        made.append(emulator)
        return emulator

    yield make
    for emulator in made:
        await emulator.aclose()


@pytest.fixture
async def client(make_emulator: MakeEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a default emulator (at /emulator)."""
    transport = httpx.ASGITransport(app=make_emulator())
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test") as c:
        yield c
