"""End to end over real HTTP: lease, an emulated call, CXML, attribution, updates, CDR."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import DESTINATION, lease, make_pool
from tests.calls.helpers import CALLER, calls
from tests.e2e.live import BOUND, eventually, live_service, outage
from tests.support import ADMIN, FakeClock

CONTEXT = {
    "landing_url": "https://shop.example/?utm_source=google&utm_medium=cpc&gclid=TEST",
    "utm_source": "google",
    "utm_medium": "cpc",
    "utm_campaign": "brand",
    "gclid": "TEST",
}


async def place_call(client: httpx.AsyncClient, to: str, **script: Any) -> dict[str, Any]:
    """Dial `to` through the emulator and wait for the call to end; its outcome."""
    body: dict[str, Any] = {"from": CALLER, "to": to, "wait": True}
    if script:
        body["script"] = script
    answer = await client.post("/emulator/inbound", json=body)
    assert answer.status_code == 200, answer.text
    outcome: dict[str, Any] = answer.json()
    assert outcome["state"] == "ended", outcome
    return outcome


async def test_a_call_to_a_leased_number_is_forwarded_attributed_and_completed(
    database_url: str, clock: FakeClock
) -> None:
    async with (
        live_service(database_url, clock) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await make_pool(client, size=2, record_calls=True)
        held = await lease(client, pool="default", context=CONTEXT)
        outcome = await place_call(client, "+" + held["phonenumber"], answer_after=3, talk=42)
        assert outcome["webhook_status"] == 200
        assert outcome["errors"] == []
        assert outcome["dial"]["number"] == DESTINATION
        assert outcome["dial"]["caller_id"] == CALLER
        assert outcome["dial"]["status"] == "answered"
        assert outcome["dial"]["action_status"] == 200
        assert outcome["cdr_sent"] is True
        assert outcome["session_updates_sent"] >= 5
        [call] = await calls(client)
        assert call["attribution"] == "dni"
        assert call["session_id"] == held["session_id"]
        assert (call["source"], call["medium"], call["campaign"]) == ("google", "cpc", "brand")
        assert call["status"] == "completed"
        assert call["disposition"] == "ANSWER"
        assert call["talk_seconds"] == 42
        assert call["duration_seconds"] >= 45
        assert call["dial_status"] == "completed"
        assert call["recording_url"]
        assert call["first_time"] is True
        detail = (await client.get(f"/v1/calls/{call['id']}", headers=ADMIN)).json()
        assert detail["context"]["gclid"] == "TEST"
        assert detail["lease"]["number"] == "+" + held["phonenumber"]


async def test_busy_business_and_an_unknown_number(database_url: str, clock: FakeClock) -> None:
    async with (
        live_service(database_url, clock) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await make_pool(client, size=1)
        held = await lease(client, pool="default", context=CONTEXT)
        busy = await place_call(client, "+" + held["phonenumber"], outcome="busy")
        assert busy["dial"]["status"] == "busy"
        assert any("nobody could take your call" in said for said in busy["said"])
        unknown = await place_call(client, "+12565559999")
        assert unknown["dial"] is None
        assert any("not in service" in said for said in unknown["said"])
        by_number = {c["to_number"]: c for c in await calls(client)}
        assert by_number["+" + held["phonenumber"]]["status"] == "busy"
        assert by_number["+" + held["phonenumber"]]["dial_status"] == "busy"
        assert by_number["+12565559999"]["attribution"] == "unattributed"


async def test_calls_come_through_while_the_database_is_down(
    backend: str, database_url: str, clock: FakeClock
) -> None:
    async with (
        live_service(database_url, clock, voice_db_timeout=0.3) as (base, app),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        desk = app.state.ct.desk
        await make_pool(client, size=1)
        held = await lease(client, pool="default", context=CONTEXT)
        await eventually(lambda: len(desk.routing) == 1)
        with outage(backend, database_url):
            outcome = await place_call(client, "+" + held["phonenumber"], talk=20)
            # The caller reached the business although nothing could be written.
            assert outcome["dial"]["number"] == DESTINATION
            assert outcome["dial"]["status"] == "answered"
            assert outcome["webhook_status"] == 200
            # Everything waits in memory, in arrival order (updates may precede the voice
            # request's own deadline).
            kinds = [p.kind for p in desk.pending]
            assert {"voice", "session", "dial", "cdr"} <= set(kinds)
            assert kinds[-1] == "cdr"
        await eventually(lambda: not desk.pending)
        [call] = await calls(client)
        assert call["attribution"] == "dni"
        assert call["session_id"] == held["session_id"]
        assert call["status"] == "completed"
        assert call["talk_seconds"] == 20
        assert call["forwarded_to"] == DESTINATION
