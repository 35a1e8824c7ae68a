"""Web-To-Call credentials over real HTTP: the service asks the emulated Cloudonix for a
subscriber, the subscriber's call is credited to its visit, and the subscriber goes away."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.api.helpers import lease, make_pool
from tests.calls.helpers import HOOKS, cdr, voice_body, voice_headers
from tests.e2e.live import BOUND, live_service
from tests.support import ADMIN, DOMAIN, FakeClock

KEY = "XI" + "7" * 32
EMULATOR = {"Authorization": f"Bearer {KEY}"}
CONTEXT = {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "november"}


def subscriber_path(msisdn: str) -> str:
    """The emulator's REST path of one subscriber."""
    return f"/emulator/customers/self/domains/{DOMAIN}/subscribers/{msisdn}"


async def credentials(client: httpx.AsyncClient, session_id: str, **extra: Any) -> httpx.Response:
    """POST /web_to_call for a visit."""
    return await client.post(
        "/web_to_call", json={"session_id": session_id, "pool": "default", **extra}
    )


async def subscriber_call(
    client: httpx.AsyncClient,
    call_id: str,
    *,
    subscriber: str,
    dialled: str,
    claimed: str,
    at: datetime,
) -> httpx.Response:
    """Cloudonix asks the voice webhook about a subscriber's call naming visit `claimed`."""
    body = voice_body(call_id, to=dialled, caller=subscriber, at=at)
    body["Direction"] = "subscriber"
    body["SessionData"]["profile"] = {"subscriber-sip-headers": {"X-Calltrack-Session": claimed}}
    headers = voice_headers(call_id, to=dialled, caller=subscriber)
    headers["X-CX-Source"] = "subscriber"
    return await client.post("/webhooks/cloudonix/voice", json=body, headers=headers)


async def test_a_visit_gets_a_subscriber_whose_call_is_credited_to_it_exactly(
    database_url: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="calltrack")
    async with (
        live_service(database_url, clock, emulator_api_key=KEY) as (base, app),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await make_pool(client)
        visit = await lease(client, context=CONTEXT)
        answer = await credentials(client, visit["session_id"])
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        got = answer.json()
        port = base.rsplit(":", 1)[1]
        assert got["websocket_url"] == f"ws://127.0.0.1:{port}/emulator/sip"
        assert got["username"].startswith("wtc-")
        assert got["uri"] == f"sip:{got['username']}@{DOMAIN}"
        assert got["dial"] == f"sip:web-{visit['session_id']}@{DOMAIN}"
        assert got["headers"] == {"X-Calltrack-Session": visit["session_id"]}
        assert got["expires_in"] == 600
        assert len(got["password"]) >= 24

        # The platform has the subscriber, and shows no password.
        made = await client.get(subscriber_path(got["username"]), headers=EMULATOR)
        assert made.status_code == 200, made.text
        assert made.json()["profile"]["calltrack-session"] == visit["session_id"]
        assert got["password"] not in made.text

        # Cloudonix asks the voice webhook about the subscriber's call.
        call_id = "w" * 32
        dialled = got["dial"].removeprefix("sip:")
        cxml = await subscriber_call(
            client,
            call_id,
            subscriber=got["username"],
            dialled=dialled,
            claimed=visit["session_id"],
            at=clock(),
        )
        assert cxml.status_code == 200, cxml.text
        assert "<Number" in cxml.text
        assert "+12125550100" in cxml.text
        # The business sees the pool's own number: a browser has none to show.
        assert 'callerId="+12125550199"' in cxml.text

        stored = await client.get("/v1/calls", headers=ADMIN)
        [call] = stored.json()["items"]
        assert (call["attribution"], call["session_id"]) == ("web_to_call", visit["session_id"])
        assert (call["source"], call["medium"], call["campaign"]) == ("newsletter", "email",
                                                                      "november")  # fmt: skip
        assert (call["pool"], call["first_time"]) == ("default", None)

        # The call ends: the subscriber is deleted on the platform.
        clock.advance(30)
        record = cdr(call_id, to=dialled, start=clock(), duration=30, billsec=25,
                     caller=got["username"])  # fmt: skip
        record["session"]["direction"] = "subscriber"
        ended = await client.post("/webhooks/cloudonix/cdr", json=record, headers=HOOKS)
        assert ended.status_code == 200, ended.text
        keeper = app.state.ct.web_call_keeper
        assert await keeper.run_once() == 1
        gone = await client.get(subscriber_path(got["username"]), headers=EMULATOR)
        assert gone.status_code == 404
        assert await keeper.run_once() == 0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert got["password"] not in logged


async def test_unused_credentials_expire_and_a_visit_is_limited(
    database_url: str, clock: FakeClock
) -> None:
    async with (
        live_service(database_url, clock, emulator_api_key=KEY, web_to_call_session_limit=2)
        as (base, app),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):  # fmt: skip
        await make_pool(client)
        visit = await lease(client, context=CONTEXT)
        first = (await credentials(client, visit["session_id"])).json()
        assert (await credentials(client, visit["session_id"])).status_code == 200
        limited = await credentials(client, visit["session_id"])
        assert limited.status_code == 429, limited.text
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.json()["field"] == "session_id"
        assert int(limited.headers["retry-after"]) == 3601

        keeper = app.state.ct.web_call_keeper
        assert await keeper.run_once() == 0  # not expired yet
        clock.advance(601)
        assert await keeper.run_once() == 2
        gone = await client.get(subscriber_path(first["username"]), headers=EMULATOR)
        assert gone.status_code == 404
        clock.advance(3000)
        assert (await credentials(client, visit["session_id"])).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"session_id": "unknown-session-0000000"}, 404, "session_id"),
        ({"session_id": "short"}, 422, "session_id"),
        ({}, 422, "session_id"),
        ({"session_id": "unknown-session-0000000", "pool": "Bad Pool"}, 422, "pool"),
    ],
)
async def test_bad_requests_name_their_field(
    database_url: str, clock: FakeClock, body: dict[str, Any], status: int, field: str
) -> None:
    async with (
        live_service(database_url, clock, emulator_api_key=KEY) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await make_pool(client)
        answer = await client.post("/web_to_call", json=body)
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["field"] == field


async def test_a_call_naming_another_visit_is_still_credited_to_its_subscribers(
    database_url: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="calltrack")
    async with (
        live_service(database_url, clock, emulator_api_key=KEY) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await make_pool(client)
        mine = await lease(client, context=CONTEXT)
        other = await lease(client, context={"utm_source": "google"})
        got = (await credentials(client, mine["session_id"])).json()
        answer = await subscriber_call(
            client,
            "x" * 32,
            subscriber=got["username"],
            dialled=f"web-{other['session_id']}@{DOMAIN}",
            claimed=other["session_id"],
            at=clock(),
        )
        assert answer.status_code == 200, answer.text
        [call] = (await client.get("/v1/calls", headers=ADMIN)).json()["items"]
        assert (call["session_id"], call["source"]) == (mine["session_id"], "newsletter")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not its subscriber's" in text for text in warned)
    assert not any(other["session_id"] in text for text in warned)
