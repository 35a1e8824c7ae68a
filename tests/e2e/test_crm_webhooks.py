"""The whole loop over real HTTP: an emulated call ends, the dispatcher inside the service
sends call.completed to a CRM on 127.0.0.1, signed."""

from __future__ import annotations

import asyncio
import time

import httpx

from app.services import signing
from tests.api.helpers import lease, make_pool
from tests.e2e.live import BOUND, eventually, live_service
from tests.support import ADMIN, FakeClock
from tests.webhooks.receiver import receiver


async def test_an_emulated_call_reaches_the_crm_from_the_running_service(
    database_url: str, clock: FakeClock
) -> None:
    with receiver() as crm:
        async with (
            live_service(
                database_url, clock, outbox_worker=True, outbox_poll_seconds=0.05,
                outbox_settle_seconds=0,
            ) as (base, _),
            httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
        ):  # fmt: skip
            made = await client.post(
                "/v1/webhooks",
                json={"url": crm.url + "/crm", "events": ["call.completed", "session.created"]},
                headers=ADMIN,
            )
            assert made.status_code == 201, made.text
            secret = made.json()["secret"]
            await make_pool(client, size=2)
            held = await lease(client, context={"utm_source": "newsletter", "utm_medium": "email"})
            answer = await client.post(
                "/emulator/inbound",
                json={
                    "from": "+16175550100",
                    "to": "+" + held["phonenumber"],
                    "wait": True,
                    "script": {"answer_after": 1, "talk": 12},
                },
            )
            assert answer.status_code == 200, answer.text

            await eventually(lambda: len(crm.received) >= 2)
            kinds = sorted(r.headers["calltrack-event"] for r in crm.received)
            assert kinds == ["call.completed", "session.created"]
            for got in crm.received:
                assert signing.verify(
                    secret, got.headers["calltrack-signature"], got.body, now=int(time.time()),
                    tolerance=10**9,  # the service's clock is the test's fake one
                )  # fmt: skip
            [call] = [r.json()["data"] for r in crm.received if r.path == "/crm"
                      and r.headers["calltrack-event"] == "call.completed"]  # fmt: skip
            assert (call["source"], call["medium"], call["attribution"]) == (
                "newsletter",
                "email",
                "dni",
            )
            assert call["session_id"] == held["session_id"]
            # The CRM has the requests; the dispatcher records each outcome just after.
            statuses: list[str] = []
            async with asyncio.timeout(BOUND):
                while statuses != ["delivered"] * 2:
                    log = await client.get("/v1/webhooks/deliveries", headers=ADMIN)
                    statuses = sorted(d["status"] for d in log.json()["items"])
                    await asyncio.sleep(0.05)
