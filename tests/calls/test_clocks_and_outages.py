"""Our clock decides attribution; events of a call apply in order across an outage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from app.main import create_app
from app.services.desk import database_unavailable
from tests.api.helpers import lease, make_pool
from tests.calls.helpers import HOOKS, call_in, calls, cdr, new_call_id, voice_body
from tests.conftest import make_settings
from tests.e2e.live import outage
from tests.support import FakeClock

SHORT: dict[str, Any] = {
    "lease_ttl_seconds": 300,
    "cooldown_seconds": 120,
    "match_window_seconds": 120,
}


async def test_a_platform_clock_running_late_cannot_credit_the_previous_visitor(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1, **SHORT)
    first = await lease(client, pool="default", context={"utm_source": "alpha"})
    clock.advance(300 + 121)
    second = await lease(client, pool="default", context={"utm_source": "beta"})
    assert second["phonenumber"] == first["phonenumber"]
    clock.advance(10)
    call_id = new_call_id()
    body = voice_body(call_id, to="+" + second["phonenumber"], at=clock() - timedelta(minutes=5))
    answer = await client.post("/webhooks/cloudonix/voice", json=body, headers=HOOKS)
    assert answer.status_code == 200
    [call] = await calls(client)
    assert call["session_id"] == second["session_id"]
    assert call["source"] == "beta"


async def test_a_long_call_known_only_from_its_cdr_is_attributed_at_its_start(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1, **SHORT)
    held = await lease(client, pool="default", context={"utm_source": "alpha"})
    start = clock()
    clock.advance(30 * 60)  # the CDR comes when the 30-minute call ends
    record = cdr(
        new_call_id(), to="+" + held["phonenumber"], start=start, duration=1800, billsec=1790
    )
    assert (
        await client.post("/webhooks/cloudonix/cdr", json=record, headers=HOOKS)
    ).status_code == 200
    [call] = await calls(client)
    assert call["attribution"] == "dni"
    assert call["session_id"] == held["session_id"]
    assert call["started_at"].startswith(start.strftime("%Y-%m-%dT%H:%M"))
    assert (call["duration_seconds"], call["talk_seconds"]) == (1800, 1790)


async def test_a_placeholder_caller_id_ties_nobody_together(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make_pool(client, size=1, **SHORT)
    held = await lease(client, pool="default")
    await call_in(client, to="+" + held["phonenumber"], at=clock(), caller="+10000000000")
    clock.advance(86400)
    await call_in(client, to="+12565559999", at=clock(), caller="+10000000000")
    latest, first = await calls(client)
    assert first["attribution"] == "dni"
    assert first["first_time"] is None
    assert latest["attribution"] == "unattributed"
    assert latest["from_number"] == "+10000000000"


@pytest.fixture
async def impatient(
    database_url: str, clock: FakeClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A service that gives the database 0.3 s per webhook."""
    application = create_app(make_settings(database_url, voice_db_timeout=0.3), clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield application, c


async def test_a_dial_result_waits_behind_its_queued_voice_request(
    impatient: tuple[FastAPI, httpx.AsyncClient],
    backend: str,
    database_url: str,
    clock: FakeClock,
) -> None:
    app, client = impatient
    desk = app.state.ct.desk
    await make_pool(client, size=1, **SHORT)
    held = await lease(client, pool="default", context={"utm_source": "alpha"})
    to = "+" + held["phonenumber"]
    with outage(backend, database_url):
        call_id, answer = await call_in(client, to=to, at=clock())
        assert answer.status_code == 200
        assert [p.kind for p in desk.pending] == ["voice"]
    clock.advance(20)
    # The database is back, but the call's voice request is still queued: the dial
    # result must not overtake it (nor be lost).
    dial = voice_body(call_id, to=to, at=clock()) | {"DialCallStatus": "busy"}
    sent = await client.post("/webhooks/cloudonix/dial-action", json=dial, headers=HOOKS)
    assert sent.status_code == 200
    assert [p.kind for p in desk.pending] == ["voice", "dial"]
    assert await desk.drain() == 2
    [call] = await calls(client)
    assert call["attribution"] == "dni"
    assert (call["status"], call["dial_status"]) == ("busy", "busy")
    again = await client.post("/webhooks/cloudonix/dial-action", json=dial, headers=HOOKS)
    assert again.status_code == 200
    assert len(await calls(client)) == 1


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("orig", "transient"),
    [
        (_PgError("08006"), True),
        (_PgError("57P01"), True),
        (_PgError("53300"), True),
        (_PgError("55000"), True),
        (_PgError("40P01"), True),
        (_PgError("22001"), False),
        (_PgError("23505"), False),
        (_PgError("42P01"), False),
        (ConnectionRefusedError(), True),
        (ValueError("bad"), False),
    ],
)
def test_only_a_database_that_does_not_answer_is_worth_waiting_for(
    orig: BaseException, transient: bool
) -> None:
    assert database_unavailable(DBAPIError("SELECT 1", None, orig)) is transient
    assert database_unavailable(TimeoutError()) is True
    assert database_unavailable(ValueError()) is False
