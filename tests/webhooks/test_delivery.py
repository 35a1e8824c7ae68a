"""Events reach CRMs over real HTTP: recorded with the change, signed, retried, never lost."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.db.models import OutboxEvent, WebhookDelivery
from app.db.repositories import outbox as outbox_repo
from app.main import create_app
from app.services.dispatcher import Dispatcher
from app.settings import Settings
from tests.api.helpers import lease, make_pool
from tests.calls.helpers import HOOKS, call_in, cdr, update
from tests.conftest import make_settings
from tests.support import ADMIN, FakeClock
from tests.webhooks.receiver import Receiver, receiver

CONTEXT = {
    "utm_source": "google",
    "utm_medium": "cpc",
    "utm_campaign": "spring",
    "gclid": "GCLID-1",
    "ga_client_id": "1234567890.1700000000",
    "landing_url": "https://plumber.example/offer?utm_source=google",
}


@pytest.fixture
def crm() -> Iterator[Receiver]:
    """A CRM endpoint on 127.0.0.1."""
    with receiver() as endpoint:
        yield endpoint


def dispatcher(app: FastAPI, clock: FakeClock, **overrides: Any) -> Dispatcher:
    """A dispatcher on the app's database and clock, with zero jitter."""
    settings: Settings = app.state.ct.settings.model_copy(update=overrides)
    return Dispatcher(
        sessionmaker=app.state.ct.sessionmaker, settings=settings, clock=clock, rand=lambda: 0.5
    )


async def subscribe(
    client: httpx.AsyncClient, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    """Subscribe `url`; the created subscription with its secret."""
    answer = await client.post(
        "/v1/webhooks",
        json={"url": url + "/hooks", "events": events or ["call.completed"]},
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def completed_call(
    client: httpx.AsyncClient, clock: FakeClock, *, billsec: int = 42, context: Any = None
) -> str:
    """A visitor leases a number and calls it; the call ends and its CDR arrives."""
    held = await lease(
        client, context=CONTEXT if context is None else context, email="jo@example.com"
    )
    to = "+" + held["phonenumber"]
    start = clock()
    call_id, answer = await call_in(client, to=to, at=start)
    assert answer.status_code == 200, answer.text
    clock.advance(billsec + 5)
    record = cdr(call_id, to=to, start=start, duration=billsec + 5, billsec=billsec)
    sent = await client.post("/webhooks/cloudonix/cdr", json=record, headers=HOOKS)
    assert sent.status_code == 200, sent.text
    return call_id


async def count(app: FastAPI, model: type[Any]) -> int:
    """Rows in a table."""
    async with app.state.ct.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def deliveries(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """The delivery log, newest first."""
    answer = await client.get("/v1/webhooks/deliveries", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_a_completed_call_reaches_the_crm_signed_with_its_marketing_context(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, crm: Receiver
) -> None:
    sub = await subscribe(client, crm.url)
    await make_pool(client)
    call_id = await completed_call(client, clock, billsec=42)

    assert await dispatcher(app, clock).run_once() == 1
    assert len(crm.received) == 1
    got = crm.received[0]
    assert got.path == "/hooks"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["calltrack-event"] == "call.completed"
    assert got.headers["calltrack-attempt"] == "1"
    # The signature, checked the way a receiver in any language would.
    stamp, _, digest = got.headers["calltrack-signature"].partition(",")
    t = stamp.removeprefix("t=")
    expected = hmac.new(sub["secret"].encode(), t.encode() + b"." + got.body, hashlib.sha256)
    assert digest == "v1=" + expected.hexdigest()
    assert int(t) == int(clock().timestamp())

    body = got.json()
    assert body["type"] == "call.completed"
    assert body["id"] == got.headers["calltrack-event-id"]
    assert body["id"].startswith("evt_")
    data = body["data"]
    assert data["provider_call_id"] == call_id
    assert (data["source"], data["medium"], data["campaign"]) == ("google", "cpc", "spring")
    assert (data["attribution"], data["talk_seconds"], data["pool"]) == ("dni", 42, "default")
    assert data["context"]["gclid"] == "GCLID-1"
    assert data["prospect"]["email"] == "jo@example.com"

    log = await deliveries(client)
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [
        ("delivered", 1, 200)
    ]
    detail = await client.get(f"/v1/webhooks/deliveries/{log[0]['id']}", headers=ADMIN)
    assert detail.json()["payload"] == body  # the log holds the exact body sent
    assert [a["status_code"] for a in detail.json()["attempts_made"]] == [200]


async def test_repeated_webhooks_make_one_event_and_one_delivery(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, crm: Receiver
) -> None:
    await subscribe(client, crm.url)
    await make_pool(client)
    held = await lease(client, context=CONTEXT)
    to = "+" + held["phonenumber"]
    start = clock()
    call_id, _ = await call_in(client, to=to, at=start)
    clock.advance(30)
    ended = update(call_id, event="e-end", status="completed", to=to, start=start,
                   answer=start + timedelta(seconds=2), end=clock())  # fmt: skip
    record = cdr(call_id, to=to, start=start, duration=30, billsec=28)
    for _ in range(2):
        for path, body in (("session-update", ended), ("cdr", record)):
            sent = await client.post(f"/webhooks/cloudonix/{path}", json=body, headers=HOOKS)
            assert sent.status_code == 200, sent.text

    worker = dispatcher(app, clock)
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert len(crm.received) == 1
    assert (await count(app, OutboxEvent), await count(app, WebhookDelivery)) == (1, 1)


async def test_call_completed_waits_for_the_cdr_then_carries_its_figures(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, crm: Receiver
) -> None:
    await subscribe(client, crm.url)
    await make_pool(client)
    settle = app.state.ct.settings.outbox_settle_seconds
    held = await lease(client, context=CONTEXT)
    to = "+" + held["phonenumber"]
    start = clock()
    call_id, _ = await call_in(client, to=to, at=start)
    clock.advance(20)
    ended = update(call_id, event="e-end", status="completed", to=to, start=start,
                   answer=start + timedelta(seconds=5), end=clock())  # fmt: skip
    await client.post("/webhooks/cloudonix/session-update", json=ended, headers=HOOKS)
    worker = dispatcher(app, clock)
    assert await worker.run_once() == 0  # waiting for the CDR

    # The CDR comes: the event is due at once, with the platform's billed seconds.
    clock.advance(3)
    record = cdr(call_id, to=to, start=start, duration=20, billsec=13)
    await client.post("/webhooks/cloudonix/cdr", json=record, headers=HOOKS)
    assert await worker.run_once() == 1
    assert crm.received[0].json()["data"]["talk_seconds"] == 13

    # A call whose CDR never comes is sent once the wait is over, with what is known.
    held = await lease(client, context=CONTEXT)
    to = "+" + held["phonenumber"]
    start = clock()
    other, _ = await call_in(client, to=to, at=start, caller="+16175550999")
    clock.advance(10)
    ended = update(other, event="e-end2", status="completed", to=to, start=start,
                   answer=start + timedelta(seconds=4), end=clock(),
                   caller="+16175550999")  # fmt: skip
    await client.post("/webhooks/cloudonix/session-update", json=ended, headers=HOOKS)
    clock.advance(settle - 1)
    assert await worker.run_once() == 0
    clock.advance(2)
    assert await worker.run_once() == 1
    late = crm.received[1].json()["data"]
    assert (late["provider_call_id"], late["talk_seconds"]) == (other, 6)


async def test_a_crm_that_is_down_loses_nothing(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, crm: Receiver
) -> None:
    sub = await subscribe(client, crm.url)
    await make_pool(client)
    await completed_call(client, clock)
    worker = dispatcher(app, clock, outbox_retry_seconds=30, outbox_max_attempts=4)

    crm.statuses = [503, 500]
    crm.retry_after = "120"
    assert await worker.run_once() == 1
    [first] = await deliveries(client)
    assert (first["status"], first["attempts"], first["last_error"]) == ("pending", 1, "HTTP 503")
    # Backoff 30 s, but the CRM asked for 120.
    assert first["next_attempt_at"] == (clock() + timedelta(seconds=120)).isoformat().replace(
        "+00:00", "Z"
    )
    crm.retry_after = None
    clock.advance(119)
    assert await worker.run_once() == 0  # not due yet
    clock.advance(1)
    assert await worker.run_once() == 1  # 500 this time: due again after 60 s (30 x 2)
    clock.advance(59)
    assert await worker.run_once() == 0
    clock.advance(1)
    assert await worker.run_once() == 1
    [done] = await deliveries(client)
    assert (done["status"], done["attempts"]) == ("delivered", 3)
    bodies = {r.body for r in crm.received}
    assert len(bodies) == 1  # every attempt sent the same event, byte for byte
    assert [r.headers["calltrack-attempt"] for r in crm.received] == ["1", "2", "3"]

    # An endpoint refusing connections: attempts run out, the delivery stays, failed.
    await completed_call(client, clock, context={"utm_source": "bing"})
    await client.patch(
        f"/v1/webhooks/{sub['id']}", json={"url": "http://127.0.0.1:9/hooks"}, headers=ADMIN
    )
    for _ in range(4):
        assert await worker.run_once() == 1
        clock.advance(3600)
    [failed, _] = await deliveries(client)
    assert (failed["status"], failed["attempts"]) == ("failed", 4)
    assert failed["last_error"].startswith("ConnectError")
    assert (await client.get(f"/v1/webhooks/{sub['id']}", headers=ADMIN)).json()[
        "failed_deliveries"
    ] == 1

    # The CRM is back: one request re-queues what failed, and it arrives.
    await client.patch(f"/v1/webhooks/{sub['id']}", json={"url": crm.url + "/hooks"}, headers=ADMIN)
    again = await client.post(f"/v1/webhooks/{sub['id']}/retry-failed", headers=ADMIN)
    assert again.json() == {"requeued": 1}
    assert await worker.run_once() == 1
    assert crm.received[-1].json()["data"]["source"] == "bing"
    assert [d["status"] for d in await deliveries(client)] == ["delivered", "delivered"]


async def test_a_paused_subscription_keeps_its_events_until_resumed(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, crm: Receiver
) -> None:
    sub = await subscribe(client, crm.url)
    await client.patch(f"/v1/webhooks/{sub['id']}", json={"active": False}, headers=ADMIN)
    await make_pool(client)
    await completed_call(client, clock)
    worker = dispatcher(app, clock)
    assert await worker.run_once() == 0
    assert [d["status"] for d in await deliveries(client)] == ["pending"]
    await client.patch(f"/v1/webhooks/{sub['id']}", json={"active": True}, headers=ADMIN)
    assert await worker.run_once() == 1
    assert len(crm.received) == 1


async def test_session_created_is_recorded_only_while_someone_subscribes(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, crm: Receiver
) -> None:
    await make_pool(client)
    await lease(client, context=CONTEXT)
    assert await count(app, OutboxEvent) == 0  # nobody listens: the lease path writes nothing

    await subscribe(client, crm.url, ["session.created"])
    clock.advance(1)
    held = await lease(client, context=CONTEXT, fullname="Jo Doe")
    await lease(client, session_id=held["session_id"])  # a renewal is no new session
    assert await dispatcher(app, clock).run_once() == 1
    body = crm.received[0].json()
    assert body["type"] == "session.created"
    data = body["data"]
    assert data["session_id"] == held["session_id"]
    assert (data["source"], data["medium"], data["campaign"]) == ("google", "cpc", "spring")
    assert data["landing_page"] == "https://plumber.example/offer"
    assert data["prospect"]["fullname"] == "Jo Doe"


async def test_callback_outcomes_reach_the_crm(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, crm: Receiver
) -> None:
    await subscribe(client, crm.url, ["callback.completed"])
    await make_pool(client, agents=["+12565550190"])
    held = await lease(client, context=CONTEXT)
    queued = await client.post(
        "/callback",
        json={"pool": "default", "phone": "+16175550123", "session_id": held["session_id"]},
    )
    assert queued.status_code in (200, 201, 202), queued.text
    callback_id = queued.json()["callback_id"]
    cancelled = await client.post(f"/v1/callbacks/{callback_id}/cancel", headers=ADMIN)
    assert cancelled.status_code == 200, cancelled.text

    assert await dispatcher(app, clock).run_once() == 1
    data = crm.received[0].json()["data"]
    assert (data["id"], data["status"], data["phone"]) == (callback_id, "cancelled", "+16175550123")
    assert (data["session_id"], data["source"]) == (held["session_id"], "google")


async def test_two_dispatchers_never_send_the_same_delivery_twice(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, crm: Receiver
) -> None:
    await subscribe(client, crm.url, ["session.created"])
    await make_pool(client, size=0)  # visits get the fallback; sessions are still made
    for _ in range(30):
        await lease(client, context=CONTEXT)
    workers = [dispatcher(app, clock, outbox_concurrency=4) for _ in range(2)]

    async def drain(worker: Dispatcher) -> None:
        for _ in range(40):
            if not await worker.run_once():
                return

    async with asyncio.timeout(60):
        await asyncio.gather(*(drain(w) for w in workers))
    ids = crm.events()
    assert len(ids) == 30
    assert len(set(ids)) == 30


async def test_a_dead_dispatchers_claim_lapses_and_another_sends_it(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, crm: Receiver
) -> None:
    await subscribe(client, crm.url)
    await make_pool(client)
    await completed_call(client, clock)
    live = dispatcher(app, clock)
    await live.run_once()  # fans out and delivers
    assert len(crm.received) == 1

    await completed_call(client, clock, context={"utm_source": "bing"})
    # A dispatcher fans out and claims, then dies before sending.
    dead = dispatcher(app, clock)
    await dead._fan_out()
    async with app.state.ct.sessionmaker() as db:
        now = clock()
        claimed = await outbox_repo.claim_due(
            db, now=now, until=now + timedelta(seconds=25), worker="dead", limit=10
        )
        await db.commit()
    assert len(claimed) == 1
    assert await live.run_once() == 0
    clock.advance(26)
    assert await live.run_once() == 1
    assert crm.received[-1].json()["data"]["source"] == "bing"


@pytest.fixture
async def ga4_app(database_url: str, clock: FakeClock) -> AsyncIterator[tuple[FastAPI, Receiver]]:
    """The app sending GA4 events to a local receiver in place of Google."""
    with receiver() as google:
        settings = make_settings(
            database_url,
            ga4_measurement_id="G-TEST123",
            ga4_api_secret="s3cr3t-Api-Value",
            ga4_endpoint=google.url + "/mp/collect",
        )
        application = create_app(settings, clock=clock)
        async with application.router.lifespan_context(application):
            yield application, google


async def test_an_attributed_call_becomes_a_ga4_phone_call_event(
    ga4_app: tuple[FastAPI, Receiver],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, google = ga4_app
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://calltrack.test") as client:
        await make_pool(client)
        started = clock()
        await completed_call(client, clock, billsec=75)
        # A call from a visit without a GA client id sends nothing to GA4.
        await completed_call(client, clock, context={"utm_source": "bing"})
        # Every logger at DEBUG, except httpx's, held at WARNING as app.logs.configure()
        # holds them in production: they print whole URLs.
        caplog.set_level(logging.DEBUG)
        for name in ("httpx", "httpcore"):
            held = logging.getLogger(name)
            monkeypatch.setattr(held, "level", held.level)  # put back after the test
            held.setLevel(logging.WARNING)
        assert await dispatcher(app, clock).run_once() == 1

        [hit] = google.received
        assert hit.path == "/mp/collect"
        assert hit.query == {"measurement_id": ["G-TEST123"], "api_secret": ["s3cr3t-Api-Value"]}
        body = hit.json()
        assert body["client_id"] == "1234567890.1700000000"
        assert body["timestamp_micros"] == int(started.timestamp() * 1_000_000)
        [event] = body["events"]
        assert event["name"] == "phone_call"
        params = event["params"]
        assert (params["source"], params["medium"], params["campaign"]) == (
            "google",
            "cpc",
            "spring",
        )
        assert (params["duration"], params["first_time"]) == (75, 1)
        log = await deliveries(client, target="ga4")
        assert [(d["status"], d["event_type"]) for d in log] == [("delivered", "call.completed")]

        # Google unreachable: retried, and the API secret appears in no log line or error.
        google.default = 500
        await completed_call(client, clock, context={**CONTEXT, "utm_campaign": "summer"})
        assert await dispatcher(app, clock).run_once() == 1
        [failed, _] = await deliveries(client, target="ga4")
        assert (failed["status"], failed["last_error"]) == ("pending", "HTTP 500")
        detail = await client.get(f"/v1/webhooks/deliveries/{failed['id']}", headers=ADMIN)
        assert "s3cr3t-Api-Value" not in detail.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "delivery" in logged
    assert "s3cr3t-Api-Value" not in logged
    assert json.dumps(params)  # the params are plain JSON values


async def test_old_deliveries_and_events_are_forgotten_after_the_retention(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, crm: Receiver
) -> None:
    await make_pool(client)
    await completed_call(client, clock)  # nobody subscribed yet: an event, no delivery
    worker = dispatcher(app, clock, outbox_retention_days=30)
    await worker.run_once()
    async with app.state.ct.sessionmaker() as db:
        [unsent] = (await db.scalars(select(OutboxEvent))).all()
    assert unsent.fanned_out_at is not None
    assert unsent.payload is None  # the visitor's details are not copied for nobody

    await subscribe(client, crm.url)
    await completed_call(client, clock, context={"utm_source": "bing"})
    await worker.run_once()  # delivered
    crm.default = 500
    await completed_call(client, clock, context={"utm_source": "yahoo"})
    await worker.run_once()  # pending, to be retried
    assert (await count(app, OutboxEvent), await count(app, WebhookDelivery)) == (3, 2)

    clock.advance(29 * 86400)
    assert await worker.prune() == 0
    clock.advance(2 * 86400)
    # The delivered one and the event nobody received go; the pending one stays, whatever
    # its age, with its event.
    assert await worker.prune() == 3
    assert (await count(app, OutboxEvent), await count(app, WebhookDelivery)) == (1, 1)
    [left] = await deliveries(client)
    assert left["status"] == "pending"
    crm.default = 200
    assert await worker.run_once() == 1
    assert crm.received[-1].json()["data"]["source"] == "yahoo"


async def test_a_backlog_is_worked_off_without_waiting_a_poll_between_batches(
    app: FastAPI, client: httpx.AsyncClient, clock: FakeClock, crm: Receiver
) -> None:
    await subscribe(client, crm.url, ["session.created"])
    await make_pool(client, size=0)
    for _ in range(40):
        await lease(client, context=CONTEXT)
    # Four at a time, polling every 30 s: ten batches would take five minutes if the loop
    # slept a poll between them.
    worker = dispatcher(app, clock, outbox_concurrency=4, outbox_poll_seconds=30.0)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(20):
            while len(crm.received) < 40:  # noqa: ASYNC110 - the receiver is another thread
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
    assert len(set(crm.events())) == 40
