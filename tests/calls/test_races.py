"""Webhooks delivered many times at once: one call, each event applied once."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.helpers import lease, make_pool
from tests.calls.helpers import (
    HOOKS,
    calls,
    cdr,
    new_call_id,
    update,
    voice_body,
    voice_headers,
)
from tests.support import FakeClock


async def test_concurrent_duplicate_deliveries_store_one_call(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=2)
    held = await lease(client, pool="default", context={"utm_source": "google"})
    to = "+" + held["phonenumber"]
    start = clock()
    call_id = new_call_id()
    voice = voice_body(call_id, to=to, at=start)
    headers = voice_headers(call_id, to=to)
    # The platform retries the voice request while the call rings; then, as it ends,
    # the final update and the CDR arrive several times each, all at once.
    voices = await asyncio.gather(
        *[client.post("/webhooks/cloudonix/voice", json=voice, headers=headers) for _ in range(12)]
    )
    assert [a.status_code for a in voices] == [200] * 12
    assert len({a.text for a in voices}) == 1  # every delivery got the same CXML
    clock.advance(40)
    end = clock()
    record = cdr(call_id, to=to, start=start, duration=40, billsec=33)
    final = update(call_id, event="end", status="answer", to=to, start=start, answer=start, end=end)
    sends = [
        client.post("/webhooks/cloudonix/cdr", json=record, headers=HOOKS) for _ in range(6)
    ] + [
        client.post("/webhooks/cloudonix/session-update", json=[final], headers=HOOKS)
        for _ in range(6)
    ]
    answers = await asyncio.gather(*sends)
    assert [a.status_code for a in answers] == [200] * len(sends)
    assert all(a.json()["queued"] == 0 for a in answers)
    [call] = await calls(client)
    assert call["attribution"] == "dni"
    assert call["session_id"] == held["session_id"]
    assert call["status"] == "completed"
    assert (call["duration_seconds"], call["talk_seconds"]) == (40, 33)
    assert call["first_time"] is True


async def test_concurrent_calls_from_many_callers_are_all_recorded(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=5)
    held = [await lease(client, pool="default", context={"utm_source": f"s{i}"}) for i in range(5)]
    ids = [new_call_id() for _ in range(40)]
    sends = []
    for index, call_id in enumerate(ids):
        to = "+" + held[index % 5]["phonenumber"]
        body = voice_body(call_id, to=to, at=clock(), caller=f"+1617555{index:04d}")
        sends.append(
            client.post(
                "/webhooks/cloudonix/voice", json=body, headers=voice_headers(call_id, to=to)
            )
        )
    answers = await asyncio.gather(*sends)
    assert all(a.status_code == 200 for a in answers)
    stored = await calls(client, limit="100")
    assert sorted(c["provider_call_id"] for c in stored) == sorted(ids)
    by_number = {h["phonenumber"]: h["session_id"] for h in held}
    for call in stored:
        assert call["attribution"] == "dni"
        assert call["session_id"] == by_number[call["to_number"].lstrip("+")]
