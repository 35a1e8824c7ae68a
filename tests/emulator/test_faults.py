"""Scripted originate faults (PUT/GET/DELETE /faults) and listing calls by number (GET /calls)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.emulator.conftest import MakeEmulator
from tests.emulator.support import AUTH, DOMAIN, eventually, until

ORIGINATE = f"/emulator/calls/{DOMAIN}/application"
SESSIONS = f"/emulator/calls/{DOMAIN}/sessions"
FAULTS = "/emulator/faults"
AGENT = "+15550002222"
BODY = {"destination": AGENT, "cxml": "<Response><Say>Your callback</Say></Response>"}


async def calls_to(client: httpx.AsyncClient, number: str | None = None) -> list[dict[str, Any]]:
    """GET /calls, filtered by number when given."""
    params = {"to": number} if number is not None else {}
    response = await client.get("/emulator/calls", params=params)
    assert response.status_code == 200
    listed: list[dict[str, Any]] = response.json()
    return listed


async def script(client: httpx.AsyncClient, *faults: dict[str, Any]) -> dict[str, Any]:
    """Replace the originate faults; GET /faults' view after it."""
    response = await client.put(FAULTS, json={"originate": list(faults)})
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


async def ring_long(client: httpx.AsyncClient) -> None:
    """The agent rings for a virtual hour: placed calls stay active through the test."""
    await client.put(f"/emulator/behaviours/{AGENT}", json={"answer_after": 3600})


async def test_429_with_retry_after_then_the_next_originate_succeeds(
    client: httpx.AsyncClient,
) -> None:
    await script(client, {"status": 429, "retry_after": 2.2})
    refused = await client.post(ORIGINATE, json=BODY, headers=AUTH)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "3"
    assert refused.json() == {"status": 429, "message": "scripted fault"}
    assert await calls_to(client, AGENT) == []

    accepted = await client.post(ORIGINATE, json=BODY, headers=AUTH)
    assert accepted.status_code == 200
    listed = await calls_to(client, AGENT)
    assert [call["token"] for call in listed] == [accepted.json()["token"]]
    assert listed[0]["direction"] == "outbound-api"


async def test_503_places_no_call_and_sends_retry_after_only_when_asked(
    client: httpx.AsyncClient,
) -> None:
    await script(client, {"status": 503}, {"status": 500, "retry_after": 5})
    for status in (503, 500):
        response = await client.post(ORIGINATE, json=BODY, headers=AUTH)
        assert response.status_code == status
        assert response.json() == {"status": status, "message": "scripted fault"}
        # 503 without retry_after, and 500 whatever retry_after says: no header.
        assert "Retry-After" not in response.headers
    assert await calls_to(client) == []


async def test_500_with_place_call_leaves_a_running_call(client: httpx.AsyncClient) -> None:
    await ring_long(client)
    await script(client, {"status": 500, "place_call": True})
    body = {**BODY, "timeout": 3600}
    response = await client.post(ORIGINATE, json=body, headers=AUTH)
    assert response.status_code == 500
    assert response.json() == {"status": 500, "message": "scripted fault"}
    # The client never learnt the token, but the agent's phone rings all the same.
    (call,) = await calls_to(client, "1 (555) 000-2222")
    assert (call["state"], call["direction"], call["to"]) == ("active", "outbound-api", AGENT)
    await until(client, call["token"], "ringing")
    assert (await client.delete(f"{SESSIONS}/{call['token']}", headers=AUTH)).status_code == 204


async def test_delayed_200_answers_late_while_the_call_already_rings(
    make_emulator: MakeEmulator,
) -> None:
    emulator = make_emulator()
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test") as c:
        await ring_long(c)
        delay = 0.6
        await script(c, {"delay": delay})
        started = time.monotonic()
        answer = asyncio.create_task(c.post(ORIGINATE, json=BODY, headers=AUTH))
        await eventually(lambda: emulator.calls.called(AGENT))
        assert not answer.done()
        response = await answer
        assert time.monotonic() - started >= 0.9 * delay
        assert response.status_code == 200
        (call,) = await calls_to(c, AGENT)
        assert response.json()["token"] == call["token"]


async def test_200_without_a_call_answers_an_unknown_token(client: httpx.AsyncClient) -> None:
    await script(client, {"status": 200, "place_call": False})
    response = await client.post(ORIGINATE, json=BODY, headers=AUTH)
    assert response.status_code == 200
    token = response.json()["token"]
    assert (await client.get(f"{SESSIONS}/{token}", headers=AUTH)).status_code == 404
    assert await calls_to(client) == []


async def test_get_faults_counts_admitted_originates(client: httpx.AsyncClient) -> None:
    state = await script(client, {"status": 502}, {"status": 500, "place_call": True})
    assert [fault["status"] for fault in state["originate"]] == [502, 500]
    assert state["originate_seen"] == 0
    # Neither a wrong bearer nor a wrong domain counts, nor consumes a fault.
    assert (await client.post(ORIGINATE, json=BODY)).status_code == 401
    other = "/emulator/calls/other.example/application"
    assert (await client.post(other, json=BODY, headers=AUTH)).status_code == 404
    assert (await client.get(FAULTS)).json()["originate_seen"] == 0

    # A fault that places no call answers whatever the body.
    assert (await client.post(ORIGINATE, json={}, headers=AUTH)).status_code == 502
    state = (await client.get(FAULTS)).json()
    assert state["originate_seen"] == 1
    assert state["originate"] == [
        {"status": 500, "retry_after": None, "delay": 0.0, "place_call": True}
    ]
    # One that places the call needs a valid body: 400, and the fault is spent.
    assert (await client.post(ORIGINATE, json={}, headers=AUTH)).status_code == 400
    assert (await client.post(ORIGINATE, json=BODY, headers=AUTH)).status_code == 200
    assert (await client.post(ORIGINATE, json={}, headers=AUTH)).status_code == 400
    assert (await client.get(FAULTS)).json() == {"originate": [], "originate_seen": 4}


async def test_faults_bypass_pacing(make_emulator: MakeEmulator) -> None:
    transport = httpx.ASGITransport(app=make_emulator(rate_requests=1, rate_period=60.0))
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test") as c:
        assert (await c.post(ORIGINATE, json=BODY, headers=AUTH)).status_code == 200
        await script(c, {"status": 201}, {"status": 503, "retry_after": 0})
        scripted = await c.post(ORIGINATE, json=BODY, headers=AUTH)
        assert (scripted.status_code, scripted.json()["destination"]) == (201, AGENT)
        unavailable = await c.post(ORIGINATE, json=BODY, headers=AUTH)
        assert (unavailable.status_code, unavailable.headers["Retry-After"]) == (503, "0")
        paced = await c.post(ORIGINATE, json=BODY, headers=AUTH)
        assert (paced.status_code, paced.json()["message"]) == (429, "too many requests")
        assert (await c.get(FAULTS)).json()["originate_seen"] == 4


async def test_invalid_faults_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    await script(client, {"status": 500})
    cases: list[tuple[object, str]] = [
        ({"originate": [{"status": 700}]}, "originate.0.status"),
        ({"originate": [{}, {"status": 99}]}, "originate.1.status"),
        ({"originate": [{"delay": 61}]}, "originate.0.delay"),
        ({"originate": [{"retry_after": -1}]}, "originate.0.retry_after"),
        ({"originate": [{"place_call": "sometimes"}]}, "originate.0.place_call"),
        ({"originate": [{"colour": "red"}]}, "originate.0.colour"),
        ({"originate": "500"}, "originate"),
        ({"hangup": []}, "hangup"),
    ]
    for body, field in cases:
        response = await client.put(FAULTS, json=body)
        assert response.status_code == 422, body
        assert field in [item["field"] for item in response.json()["detail"]], body
    response = await client.put(FAULTS, content=b"{")
    assert (response.status_code, response.json()["detail"][0]["field"]) == (422, "body")
    # A refused PUT leaves the queue as it was.
    assert [fault["status"] for fault in (await client.get(FAULTS)).json()["originate"]] == [500]


async def test_delete_clears_the_queue(client: httpx.AsyncClient) -> None:
    await script(client, {"status": 500}, {"status": 429})
    assert (await client.post(ORIGINATE, json=BODY, headers=AUTH)).status_code == 500
    assert (await client.delete(FAULTS)).status_code == 204
    assert (await client.delete(FAULTS)).status_code == 204
    assert (await client.get(FAULTS)).json() == {"originate": [], "originate_seen": 1}
    assert (await client.post(ORIGINATE, json=BODY, headers=AUTH)).status_code == 200


async def test_list_calls_matches_inbound_and_outbound_by_digits(
    client: httpx.AsyncClient,
) -> None:
    inbound = {"from": "+16175551212", "to": "+1 (555) 000-2222", "hangup_after": 1}
    first = (await client.post("/emulator/inbound", json=inbound)).json()["token"]
    second = (await client.post(ORIGINATE, json=BODY, headers=AUTH)).json()["token"]
    other = {**BODY, "destination": "+15550003333"}
    third = (await client.post(ORIGINATE, json=other, headers=AUTH)).json()["token"]

    listed = await calls_to(client, "15550002222")
    assert [call["token"] for call in listed] == [first, second]
    assert [call["direction"] for call in listed] == ["inbound", "outbound-api"]
    assert [call["token"] for call in await calls_to(client)] == [first, second, third]
    assert await calls_to(client, "+15550009999") == []
    outcome = (await client.get(f"/emulator/inbound/{second}")).json()
    assert set(listed[1]) == set(outcome)
    empty = await client.get("/emulator/calls", params={"to": " "})
    assert (empty.status_code, empty.json()["detail"][0]["field"]) == (422, "to")
