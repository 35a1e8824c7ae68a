"""The voice webhook: authentication, encodings, bad input, idempotency, unknown numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from defusedxml import ElementTree
from fastapi import FastAPI

from app.main import create_app
from tests.api.helpers import DESTINATION, lease, make_pool
from tests.calls.helpers import (
    HOOKS,
    call_in,
    calls,
    new_call_id,
    voice_body,
    voice_headers,
)
from tests.conftest import make_settings
from tests.support import ADMIN, FakeClock

VOICE = "/webhooks/cloudonix/voice"


def flat(body: dict[str, Any]) -> dict[str, str]:
    """The voice request as query or form parameters (nested parts as JSON text)."""
    import json

    return {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in body.items()}


async def test_missing_or_wrong_token_is_refused(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    call_id = new_call_id()
    body = voice_body(call_id, to="+12565550101", at=clock())
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": "Basic x"},
    ):
        answer = await client.post(VOICE, json=body, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["field"] == "authorization"
    for path in ("session-update", "cdr", "dial-action", "whisper"):
        answer = await client.post(f"/webhooks/cloudonix/{path}", json={})
        assert answer.status_code == 401, path
    assert await calls(client) == []


async def test_another_domain_is_refused(client: httpx.AsyncClient, clock: FakeClock) -> None:
    call_id = new_call_id()
    body = voice_body(call_id, to="+12565550101", at=clock())
    body["Domain"] = body["AccountSid"] = "someone-else.cloudonix.net"
    answer = await client.post(VOICE, json=body, headers=HOOKS)
    assert answer.status_code == 403
    assert answer.json()["field"] == "Domain"
    header_only = voice_body(call_id, to="+12565550101", at=clock())
    answer = await client.post(
        VOICE, json=header_only, headers={**HOOKS, "X-CX-Domain": "someone-else"}
    )
    assert answer.status_code == 403
    assert await calls(client) == []


async def test_get_json_and_form_are_handled_alike(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=3)
    answers = []
    for index, how in enumerate(("get", "json", "form")):
        number = f"+125655501{index + 1:02d}"
        call_id = new_call_id()
        body = voice_body(call_id, to=number, at=clock(), caller=f"+1617555000{index}")
        headers = voice_headers(call_id, to=number)
        if how == "get":
            answer = await client.get(VOICE, params=flat(body), headers=headers)
        elif how == "json":
            answer = await client.post(VOICE, json=body, headers=headers)
        else:
            answer = await client.post(VOICE, data=flat(body), headers=headers)
        assert answer.status_code == 200, (how, answer.text)
        answers.append(answer.text.replace(f"+1617555000{index}", "CALLER"))
    assert answers[0] == answers[1] == answers[2]
    stored = await calls(client)
    assert len(stored) == 3
    assert {c["to_number"] for c in stored} == {"+12565550101", "+12565550102", "+12565550103"}


@pytest.mark.parametrize(
    ("content", "content_type", "field"),
    [
        (b"{not json", "application/json", "body"),
        (b"[1, 2]", "application/json", "body"),
        (b'"text"', "application/json", "body"),
        (b'{"CallSid": "abc", "Domain": "calltrack.emulator"}', "application/json", "To"),
        (b'{"To": "+12565550101", "Domain": "calltrack.emulator"}', "application/json", "CallSid"),
        (b'{"CallSid": "a b<c>", "To": "1"}', "application/json", "CallSid"),
        (b"[" * 30_000 + b"]" * 30_000, "application/json", "body"),
        (
            b'{"CallSid": "abc", "To": "+1", "Direction": "' + b"x" * 17 + b'"}',
            "application/json",
            "Direction",
        ),
        (b'{"CallSid": "abc", "To": "+12565550101"}', "application/json", "Domain"),
        (
            b'{"CallSid": "abc", "To": "+1", "SessionData": "{oops"}',
            "application/json",
            "SessionData",
        ),
        (b"CallSid=abc&Domain=calltrack.emulator", "application/x-www-form-urlencoded", "To"),
        (b"x" * 70_000, "application/json", "body"),
    ],
)
async def test_malformed_requests_get_a_problem_naming_the_field(
    client: httpx.AsyncClient, content: bytes, content_type: str, field: str
) -> None:
    answer = await client.post(
        VOICE, content=content, headers={**HOOKS, "Content-Type": content_type}
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field
    assert await calls(client) == []


CDR_OK = b'"domain": "calltrack.emulator", "session": {"token": "t"}'


async def test_malformed_session_updates_and_cdrs(client: httpx.AsyncClient) -> None:
    cases = [
        ("session-update", b"{", "body"),
        ("session-update", b"[]", "body"),
        ("session-update", b'{"token": "t"}', "status"),
        ("session-update", b'[{"token": "t", "status": "ringing"}, {"status": "x"}]', "[1].token"),
        (
            "session-update",
            b'{"token": "t", "status": "ringing", "callStartTime": "soon"}',
            "callStartTime",
        ),
        ("session-update", b'{"token": "t", "status": "x", "callEndTime": 10e17}', "callEndTime"),
        ("session-update", b'{"token": "a/b", "status": "ringing"}', "token"),
        ("cdr", b"[" * 30_000 + b"]" * 30_000, "body"),
        (
            "cdr",
            b'{"session": {}, "disposition": "ANSWER", "duration": 1, "billsec": 1}',
            "session.token",
        ),
        (
            "cdr",
            b"{" + CDR_OK + b', "disposition": "ANSWER", "duration": -1, "billsec": 0}',
            "duration",
        ),
        (
            "cdr",
            b"{" + CDR_OK + b', "disposition": "WHAT", "duration": 1, "billsec": 0}',
            "disposition",
        ),
    ]
    for path, content, field in cases:
        answer = await client.post(
            f"/webhooks/cloudonix/{path}",
            content=content,
            headers={**HOOKS, "Content-Type": "application/json"},
        )
        assert answer.status_code == 422, (path, content, answer.text)
        assert answer.json()["field"] == field, (path, content, answer.json())


async def test_the_same_voice_request_twice_records_one_call(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1)
    held = await lease(client, pool="default", context={"utm_source": "google"})
    to = "+" + held["phonenumber"]
    call_id, first = await call_in(client, to=to, at=clock())
    clock.advance(3)
    _, second = await call_in(client, to=to, at=clock(), call_id=call_id)
    assert first.text == second.text
    [call] = await calls(client)
    assert call["attribution"] == "dni"
    assert call["first_time"] is True


async def test_unknown_number_says_a_message_and_hangs_up(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    _, answer = await call_in(client, to="+12565559999", at=clock())
    assert answer.status_code == 200
    root = ElementTree.fromstring(answer.text)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert "not in service" in str(root.findtext("Say"))
    [call] = await calls(client)
    assert call["attribution"] == "unattributed"
    assert call["forwarded_to"] is None


@pytest.fixture
async def default_destination_client(
    database_url: str, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    """A service that forwards calls to unknown numbers to a default destination."""
    settings = make_settings(database_url, default_destination="+12125550111")
    application: FastAPI = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_unknown_number_goes_to_the_default_destination(
    default_destination_client: httpx.AsyncClient, clock: FakeClock
) -> None:
    _, answer = await call_in(default_destination_client, to="+12565559999", at=clock())
    root = ElementTree.fromstring(answer.text)
    assert root.findtext("Dial/Number") == "+12125550111"
    [call] = await calls(default_destination_client)
    assert call["forwarded_to"] == "+12125550111"


async def test_dial_action_records_the_outcome_and_apologises(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1)
    call_id, _ = await call_in(client, to="+12565550101", at=clock())
    body = voice_body(call_id, to="+12565550101", at=clock()) | {"DialCallStatus": "no-answer"}
    answer = await client.post("/webhooks/cloudonix/dial-action", json=body, headers=HOOKS)
    assert answer.status_code == 200
    root = ElementTree.fromstring(answer.text)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    [call] = await calls(client)
    assert call["dial_status"] == "no-answer"
    missing = await client.post(
        "/webhooks/cloudonix/dial-action",
        json=voice_body(call_id, to="+12565550101", at=clock()),
        headers=HOOKS,
    )
    assert missing.status_code == 422
    assert missing.json()["field"] == "DialCallStatus"


async def test_whisper_and_recording(client: httpx.AsyncClient, clock: FakeClock) -> None:
    await make_pool(client, size=1, whisper=True, record_calls=True)
    held = await lease(
        client, pool="default", context={"utm_source": "google", "utm_medium": "cpc"}
    )
    call_id, answer = await call_in(client, to="+" + held["phonenumber"], at=clock())
    root = ElementTree.fromstring(answer.text)
    dial = root.find("Dial")
    assert dial is not None
    assert dial.get("record")
    number = root.find("Dial/Number")
    assert number is not None
    url = str(number.get("url"))
    assert "/webhooks/cloudonix/whisper?CallSid=" + call_id in url
    whisper = await client.post(url.replace("http://calltrack.test", ""), headers=HOOKS)
    assert whisper.status_code == 200
    assert ElementTree.fromstring(whisper.text).findtext("Say") == "Call from google, cpc."
    assert root.findtext("Dial/Number") == DESTINATION


async def test_the_emulator_control_api_answers_only_this_machine_or_ops(
    client: httpx.AsyncClient,
) -> None:
    body = {"from": "+16175551212", "to": "+12565550101", "script": {"outcome": "busy"}}
    # The test client comes from 203.0.113.7, not from this machine.
    refused = await client.post("/emulator/inbound", json=body)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await client.put("/emulator/behaviours/+12125550100", json={})).status_code == 403
    allowed = await client.post("/emulator/inbound", json=body, headers=ADMIN)
    assert allowed.status_code == 202, allowed.text
    # The emulated REST API has its own key and stays reachable (and refuses a wrong one).
    rest = await client.get(
        "/emulator/calls/calltrack.emulator/sessions/x", headers={"Authorization": "Bearer no"}
    )
    assert rest.status_code == 401
