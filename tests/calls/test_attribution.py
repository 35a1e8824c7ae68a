"""Attribution through the voice webhook: dni, match window, caller id, source, none."""

from __future__ import annotations

import httpx
import pytest
from defusedxml import ElementTree

from tests.api.helpers import DESTINATION, lease, make_pool
from tests.calls.helpers import CALLER, HOOKS, call_in, calls, cdr, update
from tests.support import ADMIN, FakeClock

CONTEXT = {
    "landing_url": "https://shop.example/?utm_source=google&gclid=abc",
    "utm_source": "google",
    "utm_medium": "cpc",
    "utm_campaign": "spring",
    "gclid": "abc",
}


def dialled(answer: httpx.Response) -> str:
    """The number a CXML answer forwards to."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(answer.text)
    number = root.find("Dial/Number")
    assert number is not None, answer.text
    return str(number.text)


async def test_call_during_lease_is_dni_with_context(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=2)
    held = await lease(client, pool="default", context=CONTEXT)
    clock.advance(60)
    call_id, answer = await call_in(client, to="+" + held["phonenumber"], at=clock())
    assert dialled(answer) == DESTINATION
    root = ElementTree.fromstring(answer.text)
    dial = root.find("Dial")
    assert dial is not None
    assert dial.get("callerId") == CALLER
    assert str(dial.get("action")).endswith("/webhooks/cloudonix/dial-action")
    [call] = await calls(client)
    assert call["provider_call_id"] == call_id
    assert call["attribution"] == "dni"
    assert call["session_id"] == held["session_id"]
    assert (call["source"], call["medium"], call["campaign"]) == ("google", "cpc", "spring")
    assert call["first_time"] is True
    assert call["forwarded_to"] == DESTINATION
    assert call["status"] == "ringing"
    detail = await client.get(f"/v1/calls/{call['id']}", headers=ADMIN)
    assert detail.status_code == 200
    body = detail.json()
    assert body["context"]["gclid"] == "abc"
    assert body["lease"]["number"] == "+" + held["phonenumber"]


async def test_late_call_inside_match_window_still_matches(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1, lease_ttl_seconds=600, cooldown_seconds=900)
    held = await lease(client, pool="default", context=CONTEXT)
    clock.advance(600 + 899)  # the lease ended 899 s ago; the window is 900 s
    _, answer = await call_in(client, to="+" + held["phonenumber"], at=clock())
    assert dialled(answer) == DESTINATION
    [call] = await calls(client)
    assert call["attribution"] == "dni"
    assert call["session_id"] == held["session_id"]


async def test_call_after_window_is_not_dni(client: httpx.AsyncClient, clock: FakeClock) -> None:
    await make_pool(client, size=1, lease_ttl_seconds=600, cooldown_seconds=900)
    held = await lease(client, pool="default", context=CONTEXT)
    clock.advance(600 + 900)
    await call_in(client, to="+" + held["phonenumber"], at=clock(), caller="+16175550000")
    [call] = await calls(client)
    assert call["attribution"] == "unattributed"
    assert call["session_id"] is None
    assert call["pool"] == "default"


async def test_call_after_number_moved_goes_to_the_new_session(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(
        client, size=1, lease_ttl_seconds=300, cooldown_seconds=120, match_window_seconds=120
    )
    first = await lease(client, pool="default", context=CONTEXT)
    clock.advance(300 + 121)
    second = await lease(client, pool="default", context={"utm_source": "bing"})
    assert second["phonenumber"] == first["phonenumber"]
    assert second["session_id"] != first["session_id"]
    clock.advance(5)
    await call_in(client, to="+" + second["phonenumber"], at=clock())
    [call] = await calls(client)
    assert call["attribution"] == "dni"
    assert call["session_id"] == second["session_id"]
    assert call["source"] == "bing"


async def test_repeat_caller_is_credited_by_caller_id(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1, lease_ttl_seconds=600, cooldown_seconds=900)
    held = await lease(client, pool="default", context=CONTEXT)
    await call_in(client, to="+" + held["phonenumber"], at=clock())
    clock.advance(86400)  # a day later, long after the lease and its window
    await call_in(client, to="+" + held["phonenumber"], at=clock())
    latest, earliest = await calls(client)
    assert earliest["attribution"] == "dni"
    assert earliest["first_time"] is True
    assert latest["attribution"] == "caller_id"
    assert latest["session_id"] == held["session_id"]
    assert latest["first_time"] is False
    assert latest["source"] == "google"


async def test_prospect_phone_from_the_form_matches_the_caller(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1)
    held = await lease(client, pool="default", phone=CALLER, context={"utm_source": "news"})
    clock.advance(86400)
    _, answer = await call_in(client, to="+12565559999", at=clock())
    [call] = await calls(client)
    assert call["attribution"] == "caller_id"
    assert call["session_id"] == held["session_id"]
    assert call["pool"] is None
    assert answer.status_code == 200


async def test_static_source_pool(client: httpx.AsyncClient, clock: FakeClock) -> None:
    await make_pool(
        client, "billboard", size=1, start=700, source="billboard", medium="ooh", campaign="i95"
    )
    await call_in(client, to="+12565550700", at=clock())
    [call] = await calls(client)
    assert call["attribution"] == "source"
    assert (call["source"], call["medium"], call["campaign"]) == ("billboard", "ooh", "i95")
    assert call["pool"] == "billboard"


async def test_filters_and_pagination(client: httpx.AsyncClient, clock: FakeClock) -> None:
    await make_pool(client, size=1)
    await make_pool(client, "print", size=1, start=700, source="newspaper")
    held = await lease(client, pool="default", context=CONTEXT)
    for index in range(5):
        clock.advance(10)
        to = "+" + held["phonenumber"] if index % 2 == 0 else "+12565550700"
        await call_in(client, to=to, at=clock(), caller=f"+1617555{index:04d}")
    assert len(await calls(client)) == 5
    assert len(await calls(client, attribution="dni")) == 3
    assert len(await calls(client, pool="print")) == 2
    assert len(await calls(client, source="newspaper")) == 2
    page = await client.get("/v1/calls", params={"limit": "2"}, headers=ADMIN)
    seen = [c["id"] for c in page.json()["items"]]
    while page.json()["next_cursor"]:
        page = await client.get(
            "/v1/calls", params={"limit": "2", "cursor": page.json()["next_cursor"]}, headers=ADMIN
        )
        seen += [c["id"] for c in page.json()["items"]]
    assert seen == sorted(seen, reverse=True)
    assert len(set(seen)) == 5
    bad = await client.get("/v1/calls", params={"cursor": "nonsense!"}, headers=ADMIN)
    assert bad.status_code == 422
    assert bad.json()["field"] == "query.cursor"
    unknown_pool = await client.get("/v1/calls", params={"pool": "nope"}, headers=ADMIN)
    assert unknown_pool.status_code == 422


async def test_session_updates_and_cdr_complete_the_call(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1)
    held = await lease(client, pool="default", context=CONTEXT)
    to = "+" + held["phonenumber"]
    start = clock()
    call_id, _ = await call_in(client, to=to, at=start)
    clock.advance(4)
    answered = clock()
    clock.advance(30)
    ended = clock()
    events = [
        update(call_id, event="e1", status="processing", to=to, start=start),
        [update(call_id, event="e2", status="ringing", to=to, start=start)],
        update(call_id, event="e3", status="answer", to=to, start=start, answer=answered),
        update(call_id, event="e3", status="answer", to=to, start=start, answer=answered),
        update(
            call_id, event="e4", status="answer", to=to, start=start, answer=answered, end=ended
        ),
    ]
    for event in events:
        sent = await client.post("/webhooks/cloudonix/session-update", json=event, headers=HOOKS)
        assert sent.status_code == 200, sent.text
    # A late "ringing" must not move an answered call back.
    late = update(call_id, event="e0", status="ringing", to=to, start=start)
    await client.post("/webhooks/cloudonix/session-update", json=late, headers=HOOKS)
    [call] = await calls(client)
    assert call["status"] == "completed"
    assert call["talk_seconds"] == 30
    assert call["duration_seconds"] == 34
    record = cdr(call_id, to=to, start=start, duration=35, billsec=31, recording_url="https://r/1")
    for _ in range(2):
        sent = await client.post("/webhooks/cloudonix/cdr", json=record, headers=HOOKS)
        assert sent.status_code == 200, sent.text
    [call] = await calls(client)
    assert call["disposition"] == "ANSWER"
    assert (call["duration_seconds"], call["talk_seconds"]) == (35, 31)
    assert call["recording_url"] == "https://r/1"
    assert call["answered_at"] is not None


@pytest.mark.parametrize(("disposition", "status"), [("BUSY", "busy"), ("NOANSWER", "no-answer")])
async def test_cdr_before_anything_else_records_the_call(
    client: httpx.AsyncClient, clock: FakeClock, disposition: str, status: str
) -> None:
    await make_pool(client, size=1)
    held = await lease(client, pool="default", context=CONTEXT)
    to = "+" + held["phonenumber"]
    record = cdr("c" * 32, to=to, start=clock(), duration=20, billsec=0, disposition=disposition)
    clock.advance(20)  # a CDR arrives as the call ends
    sent = await client.post("/webhooks/cloudonix/cdr", json=record, headers=HOOKS)
    assert sent.status_code == 200, sent.text
    [call] = await calls(client)
    assert call["status"] == status
    assert call["attribution"] == "dni"
    assert call["session_id"] == held["session_id"]


async def test_calls_api_refuses_bad_queries_naming_the_field(client: httpx.AsyncClient) -> None:
    import base64

    def cursor(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    cases = [
        ({"from": "2026-11-26T12:00:00"}, "from"),
        ({"to": "0001-01-01T00:00:00+05:00"}, "to"),
        ({"from": "2026-11-27T00:00:00Z", "to": "2026-11-26T00:00:00Z"}, "from"),
        ({"cursor": cursor("2026-11-26T12:00:00|5")}, "cursor"),
        ({"cursor": cursor("2026-11-26T12:00:00+00:00|99999999999999999999")}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"attribution": "magic"}, "attribution"),
    ]
    for params, field in cases:
        answer = await client.get("/v1/calls", params=params, headers=ADMIN)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.json()["field"] == f"query.{field}", (params, answer.json())
    huge = await client.get("/v1/calls/99999999999999999999", headers=ADMIN)
    assert huge.status_code == 422
    missing = await client.get("/v1/calls/12345", headers=ADMIN)
    assert missing.status_code == 404
