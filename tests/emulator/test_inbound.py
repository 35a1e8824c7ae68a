"""Inbound calls: the voice application request, CXML played, session updates, the CDR."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from tests.emulator.support import (
    API_KEY,
    CDR,
    DOMAIN,
    START_MS,
    VOICE,
    WEBHOOK_TOKEN,
    Receiver,
    ended,
)

CALLER = "+16175551212"
TRACKING = "+12565550101"
AGENT = "+15550002222"


async def call(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """Place an inbound call and wait for its outcome."""
    body = {"from": CALLER, "to": TRACKING, **fields}
    response = await client.post("/emulator/inbound", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "active"
    return await ended(client, response.json()["token"])


async def test_answered_dial_requests_the_action_and_reports(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.cxml[VOICE] = (
        '<Response><Dial action="/dial-done" callerId="+15550000000" record="true" timeout="20">'
        f"<Number>{AGENT}</Number></Dial><Say>Not reached</Say></Response>"
    )
    receiver.cxml["/dial-done"] = "<Response><Hangup/></Response>"
    outcome = await call(client, caller_name="Ann", script={"answer_after": 2, "talk": 10})

    token = outcome["token"]
    assert outcome["direction"] == "inbound"
    assert outcome["webhook_status"] == 200
    assert outcome["dial"] == {
        "number": AGENT,
        "caller_id": "+15550000000",
        "status": "answered",
        "record": True,
        "action_status": 200,
    }
    assert outcome["said"] == []
    assert (outcome["hangup"], outcome["disposition"]) == ("cxml", "ANSWER")
    assert (outcome["duration"], outcome["billsec"]) == (12, 10)
    assert outcome["cxml"] == [receiver.cxml[VOICE], receiver.cxml["/dial-done"]]
    assert outcome["errors"] == []

    voice = receiver.on(VOICE)[0]
    assert voice.method == "POST"
    assert voice.headers["authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    assert voice.headers["x-cx-apikey"] == API_KEY
    assert voice.headers["x-cx-domain"] == DOMAIN
    assert voice.headers["x-cx-session"] == token
    assert (voice.headers["x-cx-from"], voice.headers["x-cx-to"]) == (CALLER, TRACKING)
    assert voice.headers["x-cx-source"] == "trunk"
    assert voice.headers["user-agent"] == "Cloudonix APP.Core/5.3.673"
    assert voice.headers["content-type"] == "application/json"
    assert voice.body["CallSid"] == voice.body["Session"] == token
    assert (voice.body["From"], voice.body["To"], voice.body["CallerName"]) == (
        CALLER,
        TRACKING,
        "Ann",
    )
    assert voice.body["Direction"] == "inbound"
    assert voice.body["AccountSid"] == voice.body["Domain"] == DOMAIN
    assert voice.body["SessionData"]["callStartTime"] == START_MS
    assert "trunk-sip-headers" in voice.body["SessionData"]["profile"]
    assert voice.body["Application"]["url"] == f"http://service.test{VOICE}"

    action = receiver.on("/dial-done")[0].body
    assert action["DialCallStatus"] == "completed"
    assert action["DialCallDuration"] == 10
    assert action["CallSid"] == token
    assert action["RecordingUrl"] == outcome["recording_url"]

    events = receiver.updates(token)
    assert len(events) >= 10
    assert [e["status"] for e in events[:2]] == ["new", "processing"]
    assert {"ringing", "connected", "answer"} <= {e["status"] for e in events}
    repeated = [key for key, n in Counter(e["eventId"] for e in events).items() if n > 1]
    assert len(repeated) == 1
    assert any(isinstance(hit.body, list) and len(hit.body) == 1 for hit in receiver.hits)
    final = events[-1]
    assert final["callEndTime"] == START_MS + 12_000
    assert final["callAnswerTime"] == START_MS + 2000
    assert all(isinstance(e["id"], int) and e["domain"] == DOMAIN for e in events)
    assert outcome["session_updates_sent"] == len(receiver.on("/webhooks/cloudonix/session-update"))

    cdr = receiver.on(CDR)[0]
    assert cdr.headers["authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    assert cdr.body["session"]["token"] == token
    assert (cdr.body["from"], cdr.body["to"]) == (CALLER, TRACKING)
    assert (cdr.body["disposition"], cdr.body["duration"], cdr.body["billsec"]) == (
        "ANSWER",
        12,
        10,
    )
    assert cdr.body["domain"] == DOMAIN
    assert cdr.body["recording_url"].endswith(f"/recordings/{token}.wav")
    assert outcome["cdr_sent"] is True


async def test_busy_and_no_answer(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.cxml[VOICE] = f'<Response><Dial timeout="5"><Number>{AGENT}</Number></Dial></Response>'
    busy = await call(client, script={"outcome": "busy", "answer_after": 1})
    silent = await call(client, script={"answer_after": 8})
    failed = await call(client, script={"outcome": "failed", "answer_after": 0})

    assert (busy["dial"]["status"], busy["disposition"], busy["duration"]) == ("busy", "BUSY", 1)
    assert (silent["dial"]["status"], silent["disposition"]) == ("no-answer", "NOANSWER")
    assert silent["duration"] == 5
    assert (failed["dial"]["status"], failed["disposition"]) == ("failed", "FAILED")
    for outcome in (busy, silent, failed):
        assert outcome["billsec"] == 0
        assert outcome["hangup"] == "end-of-document"
    finals = [receiver.updates(o["token"])[-1]["status"] for o in (busy, silent, failed)]
    assert finals == ["busy", "noanswer", "error"]
    assert [hit.body["disposition"] for hit in receiver.on(CDR)] == ["BUSY", "NOANSWER", "FAILED"]


async def test_dial_action_hears_busy(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.cxml[VOICE] = f'<Response><Dial action="/next">{AGENT}</Dial></Response>'
    receiver.cxml["/next"] = "<Response><Say>Leave a message</Say></Response>"
    outcome = await call(client, script={"outcome": "busy"})
    action = receiver.on("/next")[0].body
    assert (action["DialCallStatus"], action["DialCallDuration"]) == ("busy", 0)
    # The apology answered the call.
    assert outcome["said"] == ["Leave a message"]
    assert outcome["disposition"] == "ANSWER"


async def test_say_then_hangup(client: httpx.AsyncClient, receiver: Receiver) -> None:
    text = "Sorry, this number is not in service. Goodbye."
    receiver.cxml[VOICE] = f"<Response><Say>{text}</Say><Hangup/><Say>never</Say></Response>"
    outcome = await call(client)
    assert outcome["said"] == [text]
    assert (outcome["hangup"], outcome["disposition"]) == ("cxml", "ANSWER")
    assert outcome["dial"] is None
    assert outcome["billsec"] == round(len(text) / 15)


async def test_callee_hangs_up_last(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.cxml[VOICE] = f"<Response><Pause length='3'/><Dial>{AGENT}</Dial></Response>"
    outcome = await call(client, script={"answer_after": 1, "talk": 4})
    assert outcome["hangup"] == "callee"
    # A leading <Pause> does not answer; the <Dial> does when the agent picks up.
    assert (outcome["duration"], outcome["billsec"]) == (8, 4)


async def test_caller_hangs_up_during_the_conversation(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.cxml[VOICE] = f'<Response><Dial action="/next">{AGENT}</Dial></Response>'
    receiver.cxml["/next"] = "<Response><Say>Not heard</Say></Response>"
    outcome = await call(client, script={"answer_after": 1, "talk": 4, "hangup_by": "caller"})
    assert outcome["hangup"] == "caller"
    assert outcome["said"] == []
    assert receiver.on("/next")[0].body["DialCallStatus"] == "completed"


async def test_caller_gives_up_while_ringing(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.cxml[VOICE] = f"<Response><Dial>{AGENT}</Dial></Response>"
    outcome = await call(client, script={"answer_after": 25}, hangup_after=6)
    assert (outcome["hangup"], outcome["disposition"], outcome["duration"]) == (
        "caller",
        "CANCEL",
        6,
    )
    assert receiver.updates(outcome["token"])[-1]["status"] == "cancel"


async def test_webhook_error_ends_the_call(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.status[VOICE] = 500
    outcome = await call(client)
    assert (outcome["hangup"], outcome["webhook_status"]) == ("webhook-error", 500)
    assert outcome["disposition"] == "FAILED"
    assert any("HTTP 500" in error for error in outcome["errors"])
    assert outcome["cdr_sent"] is True

    receiver.status.pop(VOICE)
    receiver.cxml[VOICE] = "<Response><Say>unclosed"
    outcome = await call(client)
    assert (outcome["hangup"], outcome["webhook_status"]) == ("webhook-error", 200)
    assert any("does not parse" in error for error in outcome["errors"])


async def test_get_method_sends_query_parameters(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.cxml[VOICE] = "<Response><Hangup/></Response>"
    outcome = await call(client, method="GET")
    voice = receiver.on(VOICE)[0]
    assert voice.method == "GET"
    assert voice.body is None
    assert voice.query["CallSid"] == outcome["token"]
    assert (voice.query["From"], voice.query["To"]) == (CALLER, TRACKING)
    assert voice.query["Direction"] == "inbound"
    assert "SessionData" not in voice.query
    assert voice.headers["authorization"] == f"Bearer {WEBHOOK_TOKEN}"


async def test_whisper_via_number_url(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.cxml[VOICE] = (
        f'<Response><Dial><Number url="/whisper?c=9">{AGENT}</Number></Dial></Response>'
    )
    receiver.cxml["/whisper"] = "<Response><Say>Call from the spring campaign</Say></Response>"
    outcome = await call(client, script={"answer_after": 1, "talk": 2})
    assert outcome["whispered"] == ["Call from the spring campaign"]
    assert outcome["said"] == []
    whisper = receiver.on("/whisper")[0]
    assert whisper.query == {"c": "9"}
    assert whisper.body["DialedNumber"] == AGENT
    # The caller is answered once the whisper has played.
    assert outcome["billsec"] == 2
    assert outcome["duration"] == 1 + round(len("Call from the spring campaign") / 15) + 2


async def test_redirect_plays_the_next_document(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.cxml[VOICE] = "<Response><Say>One</Say><Redirect>/two</Redirect></Response>"
    receiver.cxml["/two"] = "<Response><Say>Two</Say></Response>"
    outcome = await call(client)
    assert outcome["said"] == ["One", "Two"]
    assert receiver.on("/two")[0].body["CallSid"] == outcome["token"]


async def test_session_update_failures_do_not_stop_the_call(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.status["/webhooks/cloudonix/session-update"] = 503
    receiver.cxml[VOICE] = "<Response><Say>Hello</Say></Response>"
    outcome = await call(client)
    assert outcome["session_updates_sent"] == 0
    assert outcome["said"] == ["Hello"]
    assert any("session update" in error for error in outcome["errors"])
    assert outcome["cdr_sent"] is True
