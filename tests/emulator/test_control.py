"""Control endpoints: validation, waiting for the end, the behaviours registry, closing."""

from __future__ import annotations

import httpx

from tests.emulator.conftest import MakeEmulator
from tests.emulator.support import CDR, VOICE, Receiver, ended, eventually

AGENT = "+15550002222"


async def test_validation_errors_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    cases = [
        ({"to": "+12565550101"}, "from"),
        ({"from": "+16175551212", "to": "+12565550101", "method": "PUT"}, "method"),
        ({"from": "1", "to": "2", "script": {"outcome": "maybe"}}, "script.outcome"),
        ({"from": "1", "to": "2", "script": {"answer_after": -1}}, "script.answer_after"),
        ({"from": "1", "to": "2", "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        response = await client.post("/emulator/inbound", json=body)
        assert response.status_code == 422, body
        assert field in [item["field"] for item in response.json()["detail"]]
    response = await client.post("/emulator/inbound", content=b"nope")
    assert response.status_code == 422
    response = await client.put("/emulator/behaviours/+1555", json={"talk": "long"})
    assert (response.status_code, response.json()["detail"][0]["field"]) == (422, "talk")


async def test_wait_answers_when_the_call_has_ended(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.cxml[VOICE] = f"<Response><Dial>{AGENT}</Dial></Response>"
    body = {"from": "+16175551212", "to": "+12565550101", "wait": True}
    response = await client.post("/emulator/inbound", json=body)
    assert response.status_code == 200
    outcome = response.json()
    assert outcome["state"] == "ended"
    # The default party answers after 2 s and talks for 30 s.
    assert (outcome["duration"], outcome["billsec"]) == (32, 30)
    assert outcome["cdr_sent"] is True
    assert receiver.on(CDR)


async def test_unknown_call_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/emulator/inbound/nope")).status_code == 404


async def test_behaviours_registry(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.cxml[VOICE] = "<Response><Dial><Sip>sip:desk@pbx.example</Sip></Dial></Response>"
    body = {"from": "+16175551212", "to": "+12565550101", "wait": True}

    put = await client.put("/emulator/behaviours/sip:DESK@pbx.example", json={"outcome": "busy"})
    assert put.status_code == 200
    assert put.json()["outcome"] == "busy"
    listed = (await client.get("/emulator/behaviours")).json()
    assert listed["sip:desk@pbx.example"]["outcome"] == "busy"
    outcome = (await client.post("/emulator/inbound", json=body)).json()
    assert (outcome["dial"]["status"], outcome["disposition"]) == ("busy", "BUSY")

    assert (await client.delete("/emulator/behaviours/sip:desk@pbx.example")).status_code == 204
    assert (await client.delete("/emulator/behaviours/sip:desk@pbx.example")).status_code == 204
    outcome = (await client.post("/emulator/inbound", json=body)).json()
    assert outcome["dial"]["status"] == "answered"


async def test_numbers_match_on_digits_and_scripts_override(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.cxml[VOICE] = "<Response><Dial>1 (555) 000-2222</Dial></Response>"
    await client.put(f"/emulator/behaviours/{AGENT}", json={"outcome": "no-answer"})
    body = {"from": "+16175551212", "to": "+12565550101", "wait": True}
    outcome = (await client.post("/emulator/inbound", json=body)).json()
    assert outcome["dial"]["status"] == "no-answer"
    # A script in the request beats the registry.
    body["script"] = {"answer_after": 1, "talk": 1}
    outcome = (await client.post("/emulator/inbound", json=body)).json()
    assert outcome["dial"]["status"] == "answered"


async def test_several_numbers_ring_at_once(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.cxml[VOICE] = (
        "<Response><Dial><Number>+15550000001</Number><Number>+15550000002</Number>"
        "</Dial></Response>"
    )
    await client.put("/emulator/behaviours/+15550000001", json={"answer_after": 9, "talk": 1})
    await client.put("/emulator/behaviours/+15550000002", json={"answer_after": 3, "talk": 1})
    body = {"from": "+16175551212", "to": "+12565550101", "wait": True}
    outcome = (await client.post("/emulator/inbound", json=body)).json()
    assert outcome["dial"]["number"] == "+15550000002"
    assert outcome["duration"] == 4


async def test_aclose_cancels_running_calls(
    make_emulator: MakeEmulator, receiver: Receiver
) -> None:
    emulator = make_emulator(speed=1.0)
    receiver.cxml[VOICE] = f"<Response><Dial>{AGENT}</Dial></Response>"
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test") as c:
        body = {"from": "+16175551212", "to": "+12565550101", "hangup_after": 3600}
        token = (await c.post("/emulator/inbound", json=body)).json()["token"]
        await eventually(lambda: receiver.on(VOICE))
        await emulator.aclose()
        outcome = await ended(c, token)
    assert outcome["state"] == "ended"
    assert outcome["cdr_sent"] is False
    assert not emulator.calls._tasks
