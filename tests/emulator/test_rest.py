"""The REST API: bearer, domain, pacing, originate, session, hang up."""

from __future__ import annotations

import re

import httpx

from app.emulator.pacing import SlidingWindow
from tests.emulator.conftest import MakeEmulator
from tests.emulator.support import (
    AUTH,
    DOMAIN,
    START_MS,
    UPDATES,
    Receiver,
    dialling,
    ended,
    until,
)

SESSIONS = f"/emulator/calls/{DOMAIN}/sessions"
ORIGINATE = f"/emulator/calls/{DOMAIN}/application"
AGENT_APP = "<Response><Say>Connecting you now</Say><Dial>+15550002222</Dial></Response>"


async def test_missing_or_wrong_bearer_is_401(client: httpx.AsyncClient) -> None:
    body = {"destination": "+15550001111", "cxml": AGENT_APP}
    for headers in ({}, {"Authorization": "Bearer XIwrong"}, {"Authorization": "Basic eA=="}):
        response = await client.post(ORIGINATE, json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["status"] == 401
        assert (await client.get(f"{SESSIONS}/abc", headers=headers)).status_code == 401
        assert (await client.delete(f"{SESSIONS}/abc", headers=headers)).status_code == 401


async def test_unknown_domain_and_session_are_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/emulator/calls/other.example/sessions/abc", headers=AUTH)
    assert response.status_code == 404
    assert (await client.get(f"{SESSIONS}/{'0' * 32}", headers=AUTH)).status_code == 404
    assert (await client.delete(f"{SESSIONS}/{'0' * 32}", headers=AUTH)).status_code == 404


async def test_requests_beyond_the_window_get_429_with_retry_after(
    make_emulator: MakeEmulator,
) -> None:
    emulator = make_emulator(rate_requests=3, rate_period=30.0)
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test") as c:
        statuses = [(await c.get(f"{SESSIONS}/x", headers=AUTH)).status_code for _ in range(3)]
        assert statuses == [404, 404, 404]
        refused = await c.get(f"{SESSIONS}/x", headers=AUTH)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 30
        # Requests that fail the bearer are not counted, nor paced.
        assert (await c.get(f"{SESSIONS}/x")).status_code == 401


def test_sliding_window_admits_again_once_the_oldest_expires() -> None:
    now = [100.0]
    window = SlidingWindow(2, 10.0, now=lambda: now[0])
    assert window.acquire("d") is None
    now[0] = 104.0
    assert window.acquire("d") is None
    assert window.acquire("d") == 6
    assert window.acquire("other") is None
    now[0] = 110.0
    assert window.acquire("d") is None
    assert window.acquire("d") == 4


async def test_originate_validation_is_400(client: httpx.AsyncClient) -> None:
    cases: list[object] = [
        {"cxml": AGENT_APP},
        {"destination": "", "cxml": AGENT_APP},
        {"destination": "+15550001111"},
        {"destination": "+15550001111", "cxml": AGENT_APP, "timeout": 0},
        ["not", "an", "object"],
    ]
    for body in cases:
        response = await client.post(ORIGINATE, json=body, headers=AUTH)
        assert response.status_code == 400, body
    bad_json = await client.post(ORIGINATE, content=b"{", headers=AUTH)
    assert bad_json.status_code == 400


async def test_originate_then_get_then_delete(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    # The agent answers at once and would talk for ages: only the DELETE ends the call.
    await client.put("/emulator/behaviours/+15550002222", json={"answer_after": 0, "talk": 3600})
    body = {
        "destination": "+15550001111",
        "caller-id": "+15550009999",
        "cxml": AGENT_APP,
        "callback": "http://service.test/hooks/callback-updates?id=7",
        "timeout": 20,
    }
    response = await client.post(ORIGINATE, json=body, headers=AUTH)
    assert response.status_code == 200
    created = response.json()
    token = created["token"]
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert created["direction"] == "outbound-api"
    assert created["destination"] == "+15550001111"
    assert created["domainId"] == 1
    assert created["subscriberId"] == 1

    session = await until(client, token, "answer")
    assert session["callerId"] == "+15550009999"
    assert session["callStartTime"] == START_MS
    assert session["callAnswerTime"] == START_MS + 2000
    assert session["callEndTime"] is None
    # The agent's leg hears the <Say> first: hang up only once the <Dial> has begun, or
    # the DELETE may land before it (a race this test lost on a fast machine).
    await dialling(client, token)

    assert (await client.delete(f"{SESSIONS}/{token}?reason=done", headers=AUTH)).status_code == 204
    session = (await client.get(f"{SESSIONS}/{token}", headers=AUTH)).json()
    assert session["callEndTime"] is not None
    assert session["status"] == "answer"
    # Hanging up an ended call is not an error.
    assert (await client.delete(f"{SESSIONS}/{token}", headers=AUTH)).status_code == 204

    outcome = await ended(client, token)
    assert outcome["direction"] == "outbound-api"
    assert outcome["hangup"] == "api"
    assert outcome["disposition"] == "ANSWER"
    assert outcome["said"] == ["Connecting you now"]
    assert outcome["dial"]["number"] == "+15550002222"
    assert outcome["dial"]["status"] == "answered"
    assert outcome["cdr_sent"] is True
    hits = receiver.on("/hooks/callback-updates")
    assert hits
    assert all(hit.query == {"id": "7"} for hit in hits)
    assert not receiver.on(UPDATES)
    final = hits[-1].body
    final = final[0] if isinstance(final, list) else final
    assert final["reason"] == "done"


async def test_outbound_destination_busy_and_no_answer(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await client.put("/emulator/behaviours/+15550003333", json={"outcome": "busy"})
    await client.put("/emulator/behaviours/+15550004444", json={"outcome": "no-answer"})
    tokens = []
    for number in ("+15550003333", "+15550004444"):
        body = {"destination": number, "url": "http://service.test/app", "timeout": 15}
        tokens.append((await client.post(ORIGINATE, json=body, headers=AUTH)).json()["token"])
    busy, silent = [await ended(client, token) for token in tokens]
    assert (busy["disposition"], busy["hangup"]) == ("BUSY", "callee")
    assert (silent["disposition"], silent["duration"]) == ("NOANSWER", 15)
    sessions = [(await client.get(f"{SESSIONS}/{t}", headers=AUTH)).json() for t in tokens]
    assert [session["status"] for session in sessions] == ["busy", "noanswer"]
    # The application never ran: nobody answered.
    assert not receiver.on("/app")


async def test_outbound_fetches_the_application_url(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.cxml["/app"] = "<Response><Say>Hi</Say></Response>"
    body = {
        "destination": "+15550001111",
        "caller-id": "+15550009999",
        "url": "http://service.test/app",
    }
    token = (await client.post(ORIGINATE, json=body, headers=AUTH)).json()["token"]
    outcome = await ended(client, token)
    assert outcome["webhook_status"] == 200
    assert outcome["hangup"] == "end-of-document"
    request = receiver.on("/app")[0].body
    assert request["Direction"] == "outbound-api"
    assert (request["From"], request["To"]) == ("+15550009999", "+15550001111")
