"""The per-attempt callback webhooks, driven by hand: session updates and dial actions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.providers.voice.base import CallInfo, CallNotFound, CallState, Originate, Subscriber
from app.services.callback_worker import CallbackWorker
from app.state import AppState
from tests.callbacks.helpers import AGENTS, CUSTOMER, ask, callback_pool, ops
from tests.calls.helpers import HOOKS, calls, cdr, update, voice_headers
from tests.conftest import make_settings
from tests.support import ADMIN, DOMAIN, FakeClock

BASE = "http://calltrack.test"
AGENT = AGENTS[0]
BASE_CALLER = "+12125550199"  # the pool's fallback number, the agent leg's caller id
RETRY_SAY = "<Say>The customer did not answer. We will try again later.</Say>"


class FakeVoice:
    """The voice platform as far as the worker and the cancel path use it."""

    name = "cloudonix"

    def __init__(self) -> None:
        self.placed: list[Originate] = []
        self.hung_up: list[str] = []

    async def originate(self, request: Originate) -> CallInfo:
        self.placed.append(request)
        return CallInfo(
            call_id=f"fakecall{len(self.placed):04d}",
            state=CallState.RINGING,
            direction="outbound-api",
        )

    async def get_call(self, call_id: str) -> CallInfo:
        raise CallNotFound(f"call {call_id} unknown", status=404)

    async def hangup(self, call_id: str, *, reason: str | None = None) -> None:
        self.hung_up.append(call_id)

    async def create_subscriber(self, subscriber: Subscriber) -> None:
        raise AssertionError("callbacks never create subscribers")

    async def delete_subscriber(self, msisdn: str) -> None:
        raise AssertionError("callbacks never delete subscribers")

    async def aclose(self) -> None:
        """Nothing held."""


@dataclass
class Ringing:
    """A request whose agent leg the (fake) platform has placed."""

    callback_id: str
    session_id: str
    attempt_id: int
    call_id: str
    voice: FakeVoice

    @property
    def hooks(self) -> str:
        return f"/webhooks/cloudonix/callbacks/{self.attempt_id}"


async def ringing(app: FastAPI, client: httpx.AsyncClient, clock: FakeClock) -> Ringing:
    """Queue a request and let one worker step place its agent's call on a fake platform."""
    await callback_pool(client, agents=[AGENT])
    queued = await ask(client)
    state: AppState = app.state.ct
    voice = FakeVoice()
    state.voice = voice  # hang-ups of cancelled calls go to the fake as well
    worker = CallbackWorker(
        sessionmaker=state.sessionmaker,
        provider=voice,
        settings=state.settings,
        clock=clock,
        base_url=BASE,
    )
    assert await worker.run_once() == 1
    view = await ops(client, queued["callback_id"])
    assert view["status"] == "calling_agent", view
    assert view["claimed_by"] is None
    [attempt] = view["attempts_made"]
    assert attempt["status"] == "ringing_agent"
    [order] = voice.placed
    assert order.destination == AGENT
    assert attempt["provider_call_id"] == "fakecall0001"
    hooks = f"{BASE}/webhooks/cloudonix/callbacks/{attempt['id']}"
    assert order.status_callback == f"{hooks}/session-update"
    assert order.cxml is not None
    assert f'action="{hooks}/dial-action"' in order.cxml
    assert CUSTOMER in order.cxml
    return Ringing(
        callback_id=queued["callback_id"],
        session_id=queued["session_id"],
        attempt_id=attempt["id"],
        call_id=attempt["provider_call_id"],
        voice=voice,
    )


def session_update(
    call_id: str, status: str, *, at: datetime, answered: bool = False, ended: bool = False
) -> dict[str, Any]:
    """A session update of the agent's leg."""
    return update(
        call_id,
        event="evt-" + status,
        status=status,
        to=AGENT,
        start=at,
        answer=at if answered else None,
        end=at if ended else None,
    )


def dial_body(call_id: str, status: str, duration: int = 0, **extra: Any) -> dict[str, Any]:
    """The dial action's parameters, as Cloudonix posts them for the customer's leg."""
    return {
        "CallSid": call_id,
        "Session": call_id,
        "From": AGENT,
        "To": CUSTOMER,
        "Direction": "outbound-api",
        "Domain": DOMAIN,
        "AccountSid": DOMAIN,
        "DialCallStatus": status,
        "DialCallDuration": duration,
        **extra,
    }


async def post_update(
    client: httpx.AsyncClient, ring: Ringing, body: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        f"{ring.hooks}/session-update", json=body, headers=HOOKS if headers is None else headers
    )


async def post_dial(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    call_id = str(body.get("CallSid", ""))
    sent = voice_headers(call_id, to=CUSTOMER, caller=AGENT) if headers is None else headers
    return await client.post(path, json=body, headers=sent)


async def answered(client: httpx.AsyncClient, ring: Ringing, clock: FakeClock) -> None:
    """The agent picks up: the request now rings the customer."""
    answer = await post_update(
        client, ring, session_update(ring.call_id, "connected", at=clock.now, answered=True)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["received"] == 1
    view = await ops(client, ring.callback_id)
    assert view["status"] == "calling_customer", view
    assert view["attempts_made"][0]["status"] == "agent_answered"


def is_hangup_only(answer: httpx.Response) -> bool:
    """A CXML answer that just hangs up."""
    return (
        answer.status_code == 200
        and answer.headers["content-type"].startswith("application/xml")
        and "<Hangup" in answer.text
        and "<Say" not in answer.text
        and "<Dial" not in answer.text
    )


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token-wrong-token", "Basic abc"])
async def test_a_missing_or_wrong_bearer_is_refused(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, auth: str | None
) -> None:
    ring = await ringing(app, client, clock)
    headers = {"Authorization": auth} if auth else {}
    body = session_update(ring.call_id, "connected", at=clock.now, answered=True)
    refused = await post_update(client, ring, body, headers=headers)
    assert refused.status_code == 401, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    dial_headers = {
        k: v for k, v in voice_headers(ring.call_id, to=CUSTOMER).items() if k != "Authorization"
    }
    dial_headers.update(headers)
    path = f"{ring.hooks}/dial-action"
    for answer in (
        await post_dial(client, path, dial_body(ring.call_id, "completed", 17), dial_headers),
        await client.get(
            path, params=dial_body(ring.call_id, "completed", 17), headers=dial_headers
        ),
    ):
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    view = await ops(client, ring.callback_id)
    assert view["status"] == "calling_agent"
    assert view["attempts_made"][0]["status"] == "ringing_agent"
    assert await calls(client) == []


async def test_another_domain_is_forbidden(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    body = session_update(ring.call_id, "connected", at=clock.now, answered=True)
    body["domain"] = "someone-else.example"
    refused = await post_update(client, ring, body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["field"] == "Domain"
    path = f"{ring.hooks}/dial-action"
    other = dial_body(ring.call_id, "completed", 17, Domain="someone-else.example")
    other["AccountSid"] = "someone-else.example"
    assert (await post_dial(client, path, other)).status_code == 403
    # The body claims ours, the platform's header another: still not ours.
    headers = {**voice_headers(ring.call_id, to=CUSTOMER), "X-CX-Domain": "someone-else.example"}
    mixed = await post_dial(client, path, dial_body(ring.call_id, "completed", 17), headers)
    assert mixed.status_code == 403, mixed.text
    view = await ops(client, ring.callback_id)
    assert view["status"] == "calling_agent"
    assert await calls(client) == []


async def test_a_batch_with_one_foreign_domain_is_refused_as_a_whole(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    ours = session_update(ring.call_id, "connected", at=clock.now, answered=True)
    theirs = {**ours, "domain": "someone-else.example"}
    refused = await post_update(client, ring, [ours, theirs])
    assert refused.status_code == 403, refused.text
    view = await ops(client, ring.callback_id)
    assert view["status"] == "calling_agent"
    assert view["attempts_made"][0]["status"] == "ringing_agent"


async def test_events_of_another_call_are_ignored(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    stranger = "someothercall0001"
    for status, kwargs in (("connected", {"answered": True}), ("busy", {"ended": True})):
        answer = await post_update(
            client, ring, session_update(stranger, status, at=clock.now, **kwargs)
        )
        assert answer.status_code == 200, answer.text
    path = f"{ring.hooks}/dial-action"
    assert is_hangup_only(await post_dial(client, path, dial_body(stranger, "completed", 17)))
    assert is_hangup_only(await post_dial(client, path, dial_body(stranger, "busy")))
    view = await ops(client, ring.callback_id)
    assert view["status"] == "calling_agent"
    [attempt] = view["attempts_made"]
    assert attempt["status"] == "ringing_agent"
    assert attempt["provider_call_id"] == ring.call_id
    assert attempt["agent_answered_at"] is None
    assert attempt["customer_status"] is None
    assert await calls(client) == []


async def test_a_repeated_completed_dial_action_records_one_call(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    clock.advance(3)
    await answered(client, ring, clock)
    clock.advance(20)
    path = f"{ring.hooks}/dial-action"
    first = await post_dial(client, path, dial_body(ring.call_id, "completed", 17))
    assert is_hangup_only(first), first.text
    done = await ops(client, ring.callback_id)
    clock.advance(5)
    second = await post_dial(client, path, dial_body(ring.call_id, "completed", 17))
    assert is_hangup_only(second), second.text

    [call] = await calls(client)
    assert call["attribution"] == "callback"
    assert call["talk_seconds"] == 17
    assert call["provider_call_id"] == ring.call_id
    assert call["from_number"] == CUSTOMER
    assert call["forwarded_to"] == AGENT
    assert call["session_id"] == ring.session_id
    assert call["dial_status"] == "completed"
    view = await ops(client, ring.callback_id)
    assert view == done  # the repeat changed nothing
    assert view["status"] == "completed"
    assert view["call_id"] == call["id"]
    assert view["ended_at"] is not None
    assert view["last_error"] is None
    [attempt] = view["attempts_made"]
    assert attempt["status"] == "completed"
    assert attempt["customer_status"] == "completed"
    assert attempt["talk_seconds"] == 17
    public = (await client.get(f"/callback/{ring.callback_id}")).json()
    assert public["state"] == "completed"
    assert public["attempts"] == 1
    assert public["next_attempt_at"] is None


async def test_concurrent_deliveries_of_the_completed_dial_action_record_one_call(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    await answered(client, ring, clock)
    path = f"{ring.hooks}/dial-action"
    answers = await asyncio.gather(
        *(post_dial(client, path, dial_body(ring.call_id, "completed", 17)) for _ in range(3))
    )
    for answer in answers:
        assert is_hangup_only(answer), answer.text
    [call] = await calls(client)
    assert call["talk_seconds"] == 17
    view = await ops(client, ring.callback_id)
    assert view["status"] == "completed"
    assert view["call_id"] == call["id"]


async def test_the_agent_legs_cdr_does_not_overwrite_the_customers_talk_time(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    started = clock.now
    clock.advance(3)
    await answered(client, ring, clock)
    clock.advance(25)
    done = await post_dial(
        client, f"{ring.hooks}/dial-action", dial_body(ring.call_id, "completed", 17)
    )
    assert is_hangup_only(done), done.text
    [before] = await calls(client)
    # The agent's leg: answered after 3 s, 28 s long (whisper, ringing, talk).
    record = cdr(ring.call_id, to=AGENT, start=started, duration=28, billsec=25, caller=BASE_CALLER)
    accepted = await client.post("/webhooks/cloudonix/cdr", json=record, headers=HOOKS)
    assert accepted.status_code == 200, accepted.text
    async with asyncio.timeout(10):
        while (await calls(client))[0]["disposition"] is None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    [call] = await calls(client)
    assert call["disposition"] == "ANSWER"
    assert call["talk_seconds"] == 17
    assert call["answered_at"] == before["answered_at"]
    assert call["attribution"] == "callback"
    assert call["id"] == before["id"]


async def test_the_get_form_of_the_dial_action_completes_too(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    await answered(client, ring, clock)
    params = dial_body(ring.call_id, "completed", 9)
    answer = await client.get(
        f"{ring.hooks}/dial-action", params=params, headers=voice_headers(ring.call_id, to=CUSTOMER)
    )
    assert is_hangup_only(answer), answer.text
    [call] = await calls(client)
    assert call["talk_seconds"] == 9
    assert (await ops(client, ring.callback_id))["status"] == "completed"


async def test_a_busy_customer_is_retried_later_and_the_agent_is_told(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    await answered(client, ring, clock)
    clock.advance(10)
    answer = await post_dial(client, f"{ring.hooks}/dial-action", dial_body(ring.call_id, "busy"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    assert RETRY_SAY in answer.text
    assert answer.text.index("<Say") < answer.text.index("<Hangup")
    view = await ops(client, ring.callback_id)
    assert view["status"] == "customer_unreachable"
    assert view["ended_at"] is None
    assert view["last_error"] == "customer busy"
    due = datetime.fromisoformat(view["next_attempt_at"])
    # The first retry waits the base 300 s, jittered by +-20%.
    assert timedelta(seconds=240) <= due - clock.now <= timedelta(seconds=360)
    [attempt] = view["attempts_made"]
    assert attempt["status"] == "customer_unreachable"
    assert attempt["customer_status"] == "busy"
    public = (await client.get(f"/callback/{ring.callback_id}")).json()
    assert public["state"] == "customer_unreachable"
    assert public["next_attempt_at"] == view["next_attempt_at"]
    assert await calls(client) == []


async def test_a_dial_action_for_an_unknown_attempt_is_ignored(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    for attempt_id in (ring.attempt_id + 1000, 2**63 - 1):
        path = f"/webhooks/cloudonix/callbacks/{attempt_id}/dial-action"
        for status in ("completed", "busy"):
            answer = await post_dial(client, path, dial_body(ring.call_id, status, 17))
            assert is_hangup_only(answer), answer.text
        update_path = f"/webhooks/cloudonix/callbacks/{attempt_id}/session-update"
        body = session_update(ring.call_id, "connected", at=clock.now, answered=True)
        accepted = await client.post(update_path, json=body, headers=HOOKS)
        assert accepted.status_code == 200, accepted.text
    view = await ops(client, ring.callback_id)
    assert view["status"] == "calling_agent"
    assert view["attempts_made"][0]["status"] == "ringing_agent"
    assert await calls(client) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "connected", "domain": DOMAIN}, "token"),
        ({"token": "fakecall0001", "domain": DOMAIN}, "status"),
        ({"token": "bad token!", "status": "connected", "domain": DOMAIN}, "token"),
        (
            {
                "token": "fakecall0001",
                "status": "connected",
                "domain": DOMAIN,
                "callAnswerTime": "x",
            },
            "callAnswerTime",
        ),
        (
            [
                {"token": "fakecall0001", "status": "ringing", "domain": DOMAIN},
                {"status": "connected", "domain": DOMAIN},
            ],
            "[1].token",
        ),
        ([], "body"),
        ("just text", "body"),
        ({"token": "fakecall0001", "status": "connected"}, "Domain"),
    ],
)
async def test_a_malformed_session_update_is_a_422_naming_the_field(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, body: object, field: str
) -> None:
    ring = await ringing(app, client, clock)
    answer = await post_update(client, ring, body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field
    view = await ops(client, ring.callback_id)
    assert view["attempts_made"][0]["status"] == "ringing_agent"


async def test_a_session_update_that_is_not_json_is_a_422(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    answer = await client.post(
        f"{ring.hooks}/session-update",
        content=b"{not json",
        headers={**HOOKS, "content-type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "body"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"DialCallDuration": "seventeen"}, "DialCallDuration"),
        ({"DialCallDuration": -1}, "DialCallDuration"),
        ({"DialCallStatus": ""}, "DialCallStatus"),
        ({"DialCallStatus": None}, "DialCallStatus"),
        ({"DialCallStatus": "x" * 17}, "DialCallStatus"),
        ({"CallSid": None, "Session": None}, "CallSid"),
        ({"CallSid": "bad id!"}, "CallSid"),
        ({"To": None}, "To"),
    ],
)
async def test_a_malformed_dial_action_is_a_422_naming_the_field(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, changes: dict[str, Any], field: str
) -> None:
    ring = await ringing(app, client, clock)
    await answered(client, ring, clock)
    body = {
        k: v
        for k, v in {**dial_body(ring.call_id, "completed", 17), **changes}.items()
        if v is not None
    }
    answer = await post_dial(
        client, f"{ring.hooks}/dial-action", body, voice_headers(ring.call_id, to=CUSTOMER)
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field
    assert (await ops(client, ring.callback_id))["status"] == "calling_customer"
    assert await calls(client) == []


async def test_a_malformed_attempt_id_is_a_422(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    for attempt_id in ("abc", "0", "-1", str(2**63)):
        path = f"/webhooks/cloudonix/callbacks/{attempt_id}/dial-action"
        answer = await post_dial(client, path, dial_body(ring.call_id, "completed", 17))
        assert answer.status_code == 422, (attempt_id, answer.text)
        assert answer.json()["field"].endswith("attempt_id")


async def test_the_agent_not_answering_ends_the_round(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    clock.advance(20)
    body = [
        session_update(ring.call_id, "ringing", at=clock.now),
        session_update(ring.call_id, "noanswer", at=clock.now, ended=True),
    ]
    answer = await post_update(client, ring, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["received"] == 2
    view = await ops(client, ring.callback_id)
    assert view["status"] == "agent_unavailable"
    assert view["last_error"].startswith("no agent answered")
    due = datetime.fromisoformat(view["next_attempt_at"])
    assert timedelta(seconds=240) <= due - clock.now <= timedelta(seconds=360)
    [attempt] = view["attempts_made"]
    assert attempt["status"] == "agent_unavailable"
    assert attempt["ended_at"] is not None
    # The same final update again changes nothing.
    assert (await post_update(client, ring, body)).status_code == 200
    assert await ops(client, ring.callback_id) == view


async def test_a_cancelled_requests_call_is_hung_up_by_its_next_update(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ring = await ringing(app, client, clock)
    cancelled = await client.post(f"/v1/callbacks/{ring.callback_id}/cancel", headers=ADMIN)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["attempts_made"][0]["status"] == "cancelled"
    assert ring.voice.hung_up == [ring.call_id]  # the cancel hangs the call up
    # The platform reports the leg still ringing (the hang-up lost): hang it up again.
    answer = await post_update(client, ring, session_update(ring.call_id, "ringing", at=clock.now))
    assert answer.status_code == 200, answer.text
    assert ring.voice.hung_up == [ring.call_id, ring.call_id]
    # Its end is only noted.
    ended = session_update(ring.call_id, "cancel", at=clock.now, ended=True)
    assert (await post_update(client, ring, ended)).status_code == 200
    assert ring.voice.hung_up == [ring.call_id, ring.call_id]
    view = await ops(client, ring.callback_id)
    assert view["status"] == "cancelled"
    assert view["attempts_made"][0]["status"] == "cancelled"
    # A late customer result after the cancel: said nothing to retry, request stays cancelled.
    late = await post_dial(client, f"{ring.hooks}/dial-action", dial_body(ring.call_id, "busy"))
    assert is_hangup_only(late), late.text
    assert (await ops(client, ring.callback_id))["status"] == "cancelled"


@asynccontextmanager
async def serve(
    database_url: str, clock: FakeClock, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with particular settings, and a client talking to it in-process."""
    app = create_app(make_settings(database_url, **overrides), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield app, client


async def test_a_busy_customer_on_the_last_attempt_fails_the_request_without_promising_a_retry(
    database_url: str, clock: FakeClock
) -> None:
    async with serve(database_url, clock, callback_max_attempts=1) as (app, client):
        ring = await ringing(app, client, clock)
        await answered(client, ring, clock)
        answer = await post_dial(
            client, f"{ring.hooks}/dial-action", dial_body(ring.call_id, "busy")
        )
        assert answer.status_code == 200, answer.text
        view = await ops(client, ring.callback_id)
        assert view["status"] == "failed"
        assert view["ended_at"] is not None
        assert view["last_error"] == "customer busy; 1 attempts made"
        public = (await client.get(f"/callback/{ring.callback_id}")).json()
        assert public["state"] == "failed"
        assert public["next_attempt_at"] is None
        # No retry will come: the agent must not be told one will.
        assert "try again later" not in answer.text, answer.text
