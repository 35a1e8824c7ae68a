"""Callback workers as the operator runs them: killed mid-call, stopped, racing each other.

The service (API, webhooks, mounted emulator) runs on a real port on a real clock; the
queue is worked by `calltrack worker` processes, or by CallbackWorker instances with their
own engines. Whatever happens to a worker, a customer is called once.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
import pytest
from sqlalchemy import select

from app.clock import utc_now
from app.db.models import CallbackRequest, Pool
from app.db.repositories import callbacks as repo
from app.db.session import make_engine, make_sessionmaker
from app.providers.voice.cloudonix import build_cloudonix
from app.services.callback_worker import CallbackWorker
from tests.callbacks.helpers import (
    AGENTS,
    CUSTOMER,
    FINAL,
    ask,
    behave,
    callback_pool,
    calls_to,
    ended_calls_to,
    ops,
    wait_for,
    wait_until,
)
from tests.conftest import make_settings
from tests.e2e.live import BOUND, live_service
from tests.support import ADMIN, WEBHOOK_TOKEN, FakeClock

ROOT = Path(__file__).resolve().parents[2]
# The emulator's REST key, shared by the server and the worker processes: Cloudonix-shaped.
KEY = "XI" + "5e1f0c9a7b3d2e4f6a8b0c1d3e5f7a9b"
# Claims lapse, overdue calls are checked and silent attempts given up on within seconds.
QUICK: dict[str, Any] = {
    "callback_claim_seconds": 3,
    "callback_check_seconds": 2,
    "callback_orphan_seconds": 2,
}
TEST_SECONDS = 60.0  # what any one test may take
START_SECONDS = 30.0  # a worker process's start (imports, engine)
AGENT = AGENTS[0]

assert len(KEY) == 34


class RealClock(FakeClock):
    """The wall clock: the service and the worker processes must agree on the time."""

    def __call__(self) -> datetime:
        """Now, in UTC."""
        return utc_now()


def serving(**overrides: Any) -> dict[str, Any]:
    """live_service overrides: no worker inside, the shared key, emulated time at real speed."""
    return {
        "callback_worker": False,
        "emulator_api_key": KEY,
        "emulator_speed": 1.0,
        **QUICK,
        **overrides,
    }


@dataclass
class WorkerProcess:
    """One `calltrack worker` process and the file its output goes to."""

    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        """Its process id (part of its worker name)."""
        return self.process.pid

    def output(self, limit: int = 6000) -> str:
        """The tail of what it logged."""
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError as exc:
            return f"<cannot read {self.log}: {exc}>"

    async def exited(self, within: float) -> int:
        """Wait for it to end, at most `within` seconds; its return code."""
        try:
            return await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            raise AssertionError(f"worker running after {within} s:\n{self.output()}") from None


def holder(view: dict[str, Any]) -> int | None:
    """The pid in the name of the worker holding the request ('host:pid:hex'), if any."""
    name = view["claimed_by"]
    return None if name is None else int(name.rsplit(":", 2)[1])


class Crew:
    """Starts `calltrack worker` processes against one database and one emulator."""

    def __init__(self, tmp_path: Path, database_url: str, base: str, **settings: Any) -> None:
        self.tmp_path = tmp_path
        self.started: list[WorkerProcess] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTRACK_")}
        values: dict[str, Any] = {
            "database_url": database_url,
            "emulator_url": f"{base}/emulator",
            "emulator_api_key": KEY,
            "webhook_token": WEBHOOK_TOKEN,
            "callback_poll_seconds": 0.05,
            "log_level": "INFO",
            **QUICK,
            **settings,
        }
        self.env = env | {f"CALLTRACK_{k.upper()}": str(v) for k, v in values.items()}

    async def start(self) -> WorkerProcess:
        """A new worker process, once it works the queue."""
        log = self.tmp_path / f"worker-{len(self.started)}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "app.cli",
                "worker",
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )
        worker = WorkerProcess(process, log)
        self.started.append(worker)
        deadline = time.monotonic() + START_SECONDS
        # Polling its log: "started" is logged once the signal handlers are in place.
        while "started" not in _messages(worker):
            assert process.returncode is None, f"worker exited:\n{worker.output()}"
            assert time.monotonic() < deadline, f"worker did not start:\n{worker.output()}"
            await asyncio.sleep(0.05)
        return worker

    def outputs(self) -> str:
        """Every worker's log tail, for failure messages."""
        return "\n".join(f"--- worker {w.pid}:\n{w.output(3000)}" for w in self.started)

    async def close(self) -> None:
        """Kill whatever still runs."""
        for worker in self.started:
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.exited(BOUND)


def _messages(worker: WorkerProcess) -> str:
    # The JSON log's messages: "callback worker <name> started".
    return " ".join(
        line for line in worker.output(100_000).splitlines() if "callback worker" in line
    )


@asynccontextmanager
async def crew(
    tmp_path: Path, database_url: str, base: str, **settings: Any
) -> AsyncIterator[Crew]:
    """Worker processes, all killed on the way out."""
    workers = Crew(tmp_path, database_url, base, **settings)
    try:
        yield workers
    finally:
        await workers.close()


async def script_originate(client: httpx.AsyncClient, *faults: dict[str, Any]) -> None:
    """Script the emulator's answers to the next originate requests."""
    answer = await client.put("/emulator/faults", json={"originate": list(faults)})
    assert answer.status_code == 200, answer.text


async def originates_seen(client: httpx.AsyncClient) -> int:
    """How many originate requests reached the emulator."""
    answer = await client.get("/emulator/faults")
    assert answer.status_code == 200, answer.text
    seen: int = answer.json()["originate_seen"]
    return seen


async def dials_to(client: httpx.AsyncClient, number: str) -> int:
    """How many times any emulated call dialled `number` (<Dial> legs)."""
    answer = await client.get("/emulator/calls")
    assert answer.status_code == 200, answer.text
    return sum(d["number"] == number for call in answer.json() for d in call["dials"])


async def until(
    condition: Callable[[], Awaitable[bool]], *, within: float, why: Callable[[], str]
) -> None:
    """Poll `condition` until it holds, at most `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, why()
        await asyncio.sleep(0.05)


def attempt_in(*states: str) -> Callable[[dict[str, Any]], bool]:
    """Whether the request's latest attempt is in one of `states`."""
    return lambda v: bool(v["attempts_made"]) and v["attempts_made"][-1]["status"] in states


async def one_call_each(client: httpx.AsyncClient, customer: str = CUSTOMER) -> None:
    """The agent was called once, and that call dialled the customer once."""
    [leg] = await ended_calls_to(client, AGENT)
    assert [d["number"] for d in leg["dials"]] == [customer], leg
    assert await dials_to(client, customer) == 1
    assert await originates_seen(client) == 1


# --- SIGKILL: a worker dies with a call under way -------------------------------------------


@pytest.mark.slow
async def test_a_worker_killed_inside_originate_is_replaced_without_calling_twice(
    database_url: str, tmp_path: Path
) -> None:
    async with (
        live_service(database_url, RealClock(), **serving()) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
        crew(tmp_path, database_url, base) as workers,
    ):
        await callback_pool(client, agents=[AGENT])
        # The agent rings past the claim's lapse, so the second worker meets a live call.
        await behave(client, AGENT, answer_after=6)
        await behave(client, CUSTOMER, answer_after=1, talk=2)
        # The call is placed at once; originate's answer comes 3 s later.
        await script_originate(client, {"status": 200, "delay": 3})
        first = await workers.start()
        cid = (await ask(client))["callback_id"]

        # The agent's phone rings (its first session update is in), while the worker
        # still waits for originate's answer.
        ringing = await wait_until(client, cid, attempt_in("ringing_agent"), within=BOUND)
        assert ringing["status"] == "calling_agent"
        assert holder(ringing) == first.pid
        assert await originates_seen(client) == 1
        [attempt] = ringing["attempts_made"]
        assert attempt["provider_call_id"] is not None
        first.process.kill()
        assert await first.exited(BOUND) == -signal.SIGKILL

        await workers.start()
        done = await wait_for(client, cid, "completed", "failed", within=TEST_SECONDS - 15)
        assert done["status"] == "completed", (done, workers.outputs())
        [attempt] = done["attempts_made"]
        assert attempt["status"] == "completed"
        assert attempt["talk_seconds"] == 2
        await one_call_each(client)
        # The dead worker's claim was taken over (checking on the ringing call) and let go.
        settled = await wait_until(client, cid, lambda v: v["claimed_by"] is None, within=10)
        assert settled["status"] == "completed"


@pytest.mark.slow
async def test_a_worker_killed_while_the_customer_talks_is_replaced_without_calling_twice(
    database_url: str, tmp_path: Path
) -> None:
    # The request is looked at 5 + 2 s after the agent answers: mid-conversation.
    timings = {"callback_customer_ring_seconds": 5}
    async with (
        live_service(database_url, RealClock(), **serving(**timings)) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
        crew(tmp_path, database_url, base, **timings) as workers,
    ):
        await callback_pool(client, agents=[AGENT])
        await behave(client, AGENT, answer_after=1)
        await behave(client, CUSTOMER, answer_after=1, talk=12)
        await script_originate(client, {"status": 200, "delay": 3})
        first = await workers.start()
        cid = (await ask(client))["callback_id"]

        answered = await wait_for(client, cid, "calling_customer", within=BOUND)
        assert holder(answered) == first.pid  # still inside originate
        assert answered["attempts_made"][-1]["status"] == "agent_answered"
        first.process.kill()
        assert await first.exited(BOUND) == -signal.SIGKILL

        await workers.start()
        done = await wait_for(client, cid, "completed", "failed", within=TEST_SECONDS - 15)
        assert done["status"] == "completed", (done, workers.outputs())
        [attempt] = done["attempts_made"]
        assert (attempt["status"], attempt["talk_seconds"]) == ("completed", 12)
        await one_call_each(client)
        settled = await wait_until(client, cid, lambda v: v["claimed_by"] is None, within=10)
        assert settled["status"] == "completed"


@pytest.mark.slow
async def test_a_worker_killed_before_the_platform_placed_the_call_is_dialled_again_once(
    database_url: str, tmp_path: Path
) -> None:
    async with (
        live_service(database_url, RealClock(), **serving()) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
        crew(tmp_path, database_url, base) as workers,
    ):
        await callback_pool(client, agents=[AGENT])
        await behave(client, AGENT, answer_after=1)
        await behave(client, CUSTOMER, answer_after=1, talk=2)
        # The platform sits on the request and places nothing.
        await script_originate(client, {"status": 200, "delay": 6, "place_call": False})
        first = await workers.start()
        cid = (await ask(client))["callback_id"]

        async def asked() -> bool:
            return await originates_seen(client) == 1

        await until(asked, within=BOUND, why=workers.outputs)
        waiting = await ops(client, cid)
        assert holder(waiting) == first.pid
        assert [a["status"] for a in waiting["attempts_made"]] == ["originating"]
        first.process.kill()
        assert await first.exited(BOUND) == -signal.SIGKILL

        # No word from the platform within the orphan time: never placed, dial again.
        await workers.start()
        done = await wait_for(client, cid, "completed", "failed", within=TEST_SECONDS - 15)
        assert done["status"] == "completed", (done, workers.outputs())
        assert done["attempts"] == 1  # the call never placed does not count
        lost, placed = done["attempts_made"]
        assert (lost["status"], lost["error"]) == ("not_placed", "no word from the platform")
        assert lost["provider_call_id"] is None
        assert (placed["status"], placed["round"]) == ("completed", 1)
        [leg] = await ended_calls_to(client, AGENT)
        assert [d["number"] for d in leg["dials"]] == [CUSTOMER]
        assert await dials_to(client, CUSTOMER) == 1
        assert await originates_seen(client) == 2


# --- SIGTERM: a worker stops gracefully ----------------------------------------------------


@pytest.mark.slow
async def test_sigterm_lets_a_slow_originate_finish_and_hands_nothing_over_claimed(
    database_url: str, tmp_path: Path
) -> None:
    drain = 8.0
    async with (
        live_service(database_url, RealClock(), **serving()) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
        crew(tmp_path, database_url, base, callback_drain_seconds=drain) as workers,
    ):
        await callback_pool(client, agents=[AGENT])
        await behave(client, AGENT, answer_after=3)
        await behave(client, CUSTOMER, answer_after=1, talk=2)
        await script_originate(client, {"status": 200, "delay": 2})
        worker = await workers.start()
        cid = (await ask(client))["callback_id"]

        busy = await wait_until(client, cid, attempt_in("ringing_agent"), within=BOUND)
        assert holder(busy) == worker.pid
        assert await originates_seen(client) == 1
        began = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        assert await worker.exited(drain + 5) == 0, worker.output()
        # It waited for originate's answer (2 s), not for the whole drain.
        assert time.monotonic() - began < drain, worker.output()

        view = await ops(client, cid)
        assert view["claimed_by"] is None, view
        assert view["claimed_until"] is None
        [attempt] = view["attempts_made"]
        assert attempt["status"] in {"ringing_agent", "agent_answered", "completed"}, attempt
        # No worker runs now: the platform's reports finish the request.
        done = await wait_for(client, cid, "completed", "failed", within=BOUND)
        assert done["status"] == "completed", (done, workers.outputs())
        assert done["claimed_by"] is None
        await one_call_each(client)


@pytest.mark.slow
async def test_sigterm_past_the_drain_hands_the_claim_back_to_the_next_worker(
    database_url: str, tmp_path: Path
) -> None:
    drain = 1.0
    async with (
        live_service(database_url, RealClock(), **serving()) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
        crew(tmp_path, database_url, base, callback_drain_seconds=drain) as workers,
    ):
        await callback_pool(client, agents=[AGENT])
        await behave(client, AGENT, answer_after=7)
        await behave(client, CUSTOMER, answer_after=1, talk=2)
        await script_originate(client, {"status": 200, "delay": 5})
        first = await workers.start()
        cid = (await ask(client))["callback_id"]

        busy = await wait_until(client, cid, attempt_in("ringing_agent"), within=BOUND)
        assert holder(busy) == first.pid
        began = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        assert await first.exited(drain + 5) == 0, first.output()
        assert time.monotonic() - began < 4.0, first.output()  # the 5 s answer was not awaited
        assert "handed back 1 claims" in first.output()

        handed = await ops(client, cid)
        assert handed["claimed_by"] is None, handed
        assert handed["status"] == "calling_agent"
        assert handed["attempts_made"][-1]["status"] == "ringing_agent"
        # Due after the orphan wait (its session updates may yet come), not after a lapse.
        orphan = timedelta(seconds=QUICK["callback_orphan_seconds"])
        assert datetime.fromisoformat(handed["next_attempt_at"]) <= utc_now() + orphan

        await workers.start()
        done = await wait_for(client, cid, "completed", "failed", within=TEST_SECONDS - 15)
        assert done["status"] == "completed", (done, workers.outputs())
        [attempt] = done["attempts_made"]
        assert attempt["status"] == "completed"
        await one_call_each(client)


# --- Races: two claimers, one queue --------------------------------------------------------

QUEUED = 200
CLAIMERS = 4
BATCH = 3


def customers(count: int) -> list[str]:
    """Distinct callers in E.164 that phonenumbers takes for valid US numbers."""
    numbers = [f"+1212555{n:04d}" for n in range(count)]
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(n)) for n in numbers)
    return numbers


async def test_concurrent_claimers_never_take_the_same_request(
    database_url: str, backend: str, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await callback_pool(client)
    start = clock.now
    seeder = make_engine(database_url)
    try:
        async with make_sessionmaker(seeder)() as db:
            pool_id = (await db.execute(select(Pool.id).where(Pool.name == "default"))).scalar_one()
            for n, phone in enumerate(customers(QUEUED)):
                due = start + timedelta(milliseconds=n // 2)  # pairs due at the same instant
                inserted = await repo.insert_unless_pending(
                    db,
                    {
                        "id": f"cb_race{n:017d}",
                        "pool_id": pool_id,
                        "session_id": None,
                        "phone": phone,
                        "status": "queued",
                        "attempts": 0,
                        "agent_index": 0,
                        "next_attempt_at": due,
                        "scheduled_for": due,
                        "expires_at": due + timedelta(hours=4),
                        "created_at": start,
                        "updated_at": start,
                    },
                )
                assert inserted
            await db.commit()
    finally:
        await seeder.dispose()

    now = start + timedelta(minutes=1)
    until_ = now + timedelta(hours=1)
    engines = [make_engine(database_url, pool_size=1) for _ in range(CLAIMERS)]
    gate = asyncio.Event()
    tokens: dict[str, str] = {}  # token -> claimer

    async def claimer(index: int) -> list[str]:
        makers = make_sessionmaker(engines[index])
        async with makers() as db:  # connect before the race starts
            await db.connection()
        await gate.wait()
        got: list[str] = []
        for _ in range(QUEUED):  # more rounds than could ever be needed
            token = secrets.token_hex(8)
            tokens[token] = f"w{index}"
            async with makers() as db:
                ids = await repo.claim_due(
                    db, now=now, until=until_, worker=f"w{index}", token=token, limit=BATCH
                )
                await db.commit()
            assert len(ids) <= BATCH, ids
            if not ids:
                return got
            got.extend(ids)
            await asyncio.sleep(0)
        raise AssertionError("the queue never ran dry")

    try:
        racing = asyncio.gather(*(claimer(i) for i in range(CLAIMERS)))
        await asyncio.sleep(0.2)
        gate.set()
        claimed = await asyncio.wait_for(racing, TEST_SECONDS)
        async with make_sessionmaker(engines[0])() as db:
            held = select(
                CallbackRequest.id, CallbackRequest.claimed_by, CallbackRequest.claim_token
            )
            rows = (await db.execute(held)).all()
            left = await repo.claim_due(db, now=now, until=until_, worker="x", token="x", limit=10)
            await db.rollback()
    finally:
        for engine in engines:
            await engine.dispose()

    every = [rid for ids in claimed for rid in ids]
    twice = {rid: n for rid, n in Counter(every).items() if n > 1}
    assert twice == {}, f"{len(twice)} claimed more than once on {backend}: {list(twice)[:5]}"
    assert len(every) == QUEUED
    assert left == []
    # Each row is held by the claimer that was told it has it, under that claim's token.
    owner = {rid: f"w{i}" for i, ids in enumerate(claimed) for rid in ids}
    assert {rid: (by, tokens.get(token or "")) for rid, by, token in rows} == {
        rid: (owner[rid], owner[rid]) for rid in owner
    }
    if backend == "postgresql":
        # Truly concurrent: more than one claimer got work.
        assert sum(1 for ids in claimed if ids) > 1, [len(ids) for ids in claimed]


class Tally(CallbackWorker):
    """A worker that notes every request it was handed by a claim."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handled: list[str] = []

    async def _handle(self, request_id: str, token: str) -> None:
        self.handled.append(request_id)
        await super()._handle(request_id, token)


@asynccontextmanager
async def in_process(
    database_url: str, base: str, count: int, **overrides: Any
) -> AsyncIterator[list[Tally]]:
    """`count` running workers, each with its own engine and HTTP client, as in processes."""
    settings = make_settings(
        database_url,
        emulator_url=f"{base}/emulator",
        emulator_api_key=KEY,
        callback_poll_seconds=0.05,
        **overrides,
    )
    webhooks = settings.callback_webhook_base
    assert webhooks == base
    engines = [make_engine(database_url, pool_size=4) for _ in range(count)]
    https = [httpx.AsyncClient(follow_redirects=False, trust_env=False) for _ in range(count)]
    stop = asyncio.Event()
    workers = [
        Tally(
            sessionmaker=make_sessionmaker(engine),
            provider=build_cloudonix(settings, http, base_url=f"{base}/emulator", api_key=KEY),
            settings=settings,
            clock=utc_now,
            base_url=webhooks,
        )
        for engine, http in zip(engines, https, strict=True)
    ]
    running = [asyncio.create_task(worker.run(stop)) for worker in workers]
    try:
        yield workers
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), BOUND)
        for http in https:
            await http.aclose()
        for engine in engines:
            await engine.dispose()


async def test_two_workers_share_the_queue_and_call_each_customer_once(
    database_url: str,
) -> None:
    many = customers(20)
    # The emulator at speed 100: a call takes a fraction of a second.
    fast = {"cloudonix_rate_requests": 1000}
    overrides = {**serving(**fast), "emulator_speed": 100.0}
    async with (
        live_service(database_url, RealClock(), **overrides) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        # As many agents as requests: an agent on a call is not rung for another, so with
        # fewer the requests would wait their turn (and be claimed more than once).
        agents = [f"+1212555{300 + n:04d}" for n in range(len(many))]
        await callback_pool(client, agents=agents)
        for agent in agents:
            await behave(client, agent, answer_after=1, talk=60)
        for phone in many:
            await behave(client, phone, answer_after=1, talk=5)
        queued = [(await ask(client, phone))["callback_id"] for phone in many]

        async def all_done() -> bool:
            listing = await client.get("/v1/callbacks", params={"limit": 50}, headers=ADMIN)
            assert listing.status_code == 200, listing.text
            return all(v["status"] in FINAL for v in listing.json()["items"])

        async with in_process(database_url, base, 2, **fast) as workers:
            await until(all_done, within=TEST_SECONDS - 15, why=lambda: "requests left undone")

        for cid, phone in zip(queued, many, strict=True):
            view = await ops(client, cid)
            assert view["status"] == "completed", view
            assert view["claimed_by"] is None
            [attempt] = view["attempts_made"]
            assert attempt["status"] == "completed"
            assert await dials_to(client, phone) == 1, phone
        assert sum([len(await calls_to(client, agent)) for agent in agents]) == 20
        assert await originates_seen(client) == 20
        # Each request was claimed once, by one worker or the other, and both took part.
        handled = Counter(workers[0].handled + workers[1].handled)
        assert handled == Counter(dict.fromkeys(queued, 1))
        assert workers[0].handled, [len(w.handled) for w in workers]
        assert workers[1].handled, [len(w.handled) for w in workers]


async def test_a_slow_originate_keeps_its_claim_and_nobody_dials_again(
    database_url: str,
) -> None:
    # Claims would lapse after 1 s; originate answers after 2.5 s, the call ringing meanwhile.
    # The worker waiting on the platform keeps its claim alive, so the other never steps in.
    timings = {**QUICK, "callback_claim_seconds": 1, "callback_check_seconds": 1}
    async with (
        live_service(database_url, RealClock(), **serving(**timings)) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=BOUND) as client,
    ):
        await callback_pool(client, agents=[AGENT])
        await behave(client, AGENT, answer_after=4)
        await behave(client, CUSTOMER, answer_after=1, talk=1)
        await script_originate(client, {"status": 200, "delay": 2.5})
        cid = (await ask(client))["callback_id"]
        async with in_process(database_url, base, 2, **timings) as workers:
            done = await wait_for(client, cid, "completed", "failed", within=TEST_SECONDS - 15)
        assert done["status"] == "completed", done
        [attempt] = done["attempts_made"]
        assert attempt["status"] == "completed"
        await one_call_each(client)
        assert len(workers[0].handled) + len(workers[1].handled) == 1, [w.handled for w in workers]
