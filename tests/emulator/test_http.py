"""Over real HTTP on 127.0.0.1: mounted inside a service, and served on its own."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from starlette.routing import Mount

from app.emulator import EmulatorConfig, create_emulator
from tests.emulator.support import (
    API_KEY,
    AUTH,
    CDR,
    DOMAIN,
    VOICE,
    WEBHOOK_TOKEN,
    Receiver,
    ended,
    fixed_clock,
    serve,
)


def config(service_url: str | None = None) -> EmulatorConfig:
    """A fast emulator using real HTTP."""
    return EmulatorConfig(
        api_key=API_KEY,
        domain=DOMAIN,
        webhook_token=WEBHOOK_TOKEN,
        service_url=service_url,
        speed=200.0,
        clock=fixed_clock,
    )


async def test_mounted_in_the_service_derives_its_address() -> None:
    emulator = create_emulator(config(), prefix="")
    receiver = Receiver([Mount("/emulator", app=emulator)])
    receiver.cxml[VOICE] = (
        '<Response><Dial record="record-from-answer">+15550002222</Dial></Response>'
    )
    try:
        async with serve(receiver.app) as base, httpx.AsyncClient(base_url=base) as client:
            body = {"from": "+16175551212", "to": "+12565550101", "wait": True}
            response = await client.post("/emulator/inbound", json=body, timeout=10)
            assert response.status_code == 200
            outcome = response.json()
            assert outcome["disposition"] == "ANSWER"
            assert outcome["errors"] == []
            assert receiver.on(VOICE)[0].headers["host"] == base.removeprefix("http://")
            recording = outcome["recording_url"]
            assert recording.startswith(f"{base}/emulator/recordings/")
            audio = await client.get(recording)
            assert (audio.status_code, audio.content[:4]) == (200, b"RIFF")

            originate = {"destination": "+15550001111", "url": f"{base}/app"}
            created = await client.post(
                f"/emulator/calls/{DOMAIN}/application", json=originate, headers=AUTH
            )
            assert created.status_code == 200
            outcome = await ended(client, created.json()["token"])
            assert outcome["webhook_status"] == 204
            assert outcome["hangup"] == "webhook-error"
            assert len(receiver.on(CDR)) == 2
    finally:
        await emulator.aclose()


async def test_standalone_talks_to_the_configured_service() -> None:
    receiver = Receiver()
    receiver.cxml[VOICE] = "<Response><Say>Hello</Say></Response>"
    async with serve(receiver.app) as service:
        emulator = create_emulator(config(service))
        try:
            async with serve(emulator) as base, httpx.AsyncClient(base_url=base) as client:
                body = {"from": "+16175551212", "to": "+12565550101", "wait": True}
                outcome = (await client.post("/emulator/inbound", json=body, timeout=10)).json()
                assert outcome["said"] == ["Hello"]
                assert receiver.on(CDR)[0].body["disposition"] == "ANSWER"
                missing = await client.get(f"/emulator/calls/{DOMAIN}/sessions/x")
                assert missing.status_code == 401
        finally:
            await emulator.aclose()


def test_not_in_the_openapi_schema() -> None:
    service = FastAPI()
    service.mount("/emulator", create_emulator(config(), prefix=""))
    assert not any("emulator" in path for path in service.openapi()["paths"])
