"""What the outbox costs the lease path, and how fast the dispatcher delivers its events.

For each backend (PostgreSQL: a fresh database; SQLite: a temp file), migrated with the
project's own migrations and seeded through the service's pool code (TTL and cooldown then
set to 0 so that the numbers recycle at once):

1. Lease path. `leasing.assign()` for new visitors (no session id, UTM context), each in its
   own session and transaction committed like the API's `get_db`, timed in process (no
   HTTP), in three cases: (a) no subscription, (b) a subscription to call.completed only,
   (c) a subscription to session.created (one outbox_event row per new session). N leases
   per case and repetition; within a repetition the cases take turns, `--chunk` leases at
   a time (0: all N at once), and their order is rotated from one repetition to the next.
   On PostgreSQL also with 8 concurrent tasks.
2. Dispatcher. K session.created events recorded through the lease path with one
   subscription, then the service's Dispatcher (`run_once()` in a loop, bounded in rounds
   and seconds) fans them out and POSTs them to a receiver on 127.0.0.1 running in a
   separate process (uvicorn, answers 200 at once), at each outbox_concurrency. The time
   and CPU spent in fan-out are measured apart; the same HTTP requests without the
   dispatcher give the HTTP client's share. Then the dispatcher's own `run()` loop (poll
   interval as configured) for a few seconds on a backlog, as the service runs it.

    python -m bench.outbox_bench [--sessions 2000] [--chunk 250] [--repeat 5] [--tasks 1,8]
        [--events 2000] [--concurrency 8,32] [--dispatch-repeat 3] [--profile]
        [--backends postgresql,sqlite] [--phases lease,dispatch]

Results: JSON under bench/results/ and a Markdown summary on stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import utc_now
from app.db import migrate
from app.db.models import OutboxEvent, WebhookDelivery
from app.db.session import make_engine, make_sessionmaker
from app.services import delivery_requests, leasing, outbox, signing, visits, webhooks
from app.services import pools as pool_service
from app.services.dispatcher import Dispatcher
from app.settings import Settings
from bench.common import keep_result, log, machine_ticks, median, psql, terminate, wait_calm
from bench.common import sqlalchemy_url as pg_url
from bench.lease_bench import us_numbers

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # the receiver listens here and every delivery goes here
POOL = "bench"
# (a), (b), (c): which events the one subscription wants, None for no subscription.
CASES: dict[str, list[str] | None] = {
    "none": None,
    "call_completed": [outbox.CALL_COMPLETED],
    "session_created": [outbox.SESSION_CREATED],
}
CONTEXTS = [
    {
        "utm_source": source,
        "utm_medium": "cpc",
        "utm_campaign": f"spring-{n}",
        "landing_url": f"https://shop.example/offer/{n}?utm_source={source}&utm_medium=cpc",
    }
    for n, source in enumerate(["google", "bing", "facebook", "newsletter"] * 4)
]


@dataclass(frozen=True)
class Config:
    """What the command line asked for."""

    backends: list[str]
    phases: list[str]
    sessions: int
    chunk: int
    repeat: int
    warmup: int
    tasks: list[int]
    events: int
    concurrency: list[int]
    dispatch_repeat: int
    run_loop_seconds: float
    poll_seconds: float
    numbers: int
    db_pool_size: int
    max_seconds: float
    max_load: float
    calm_wait: float
    port: int
    profile: bool
    pg_host: str
    pg_port: int
    pg_user: str
    database: str


# ---------------------------------------------------------------------------- the receiver

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _Counter:
    posts = 0


async def receiver_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The CRM stand-in (run by uvicorn in its own process): 200 to every POST, at once.

    `GET /count` answers how many POSTs it has taken, so the harness can check the
    deliveries, and the CPU seconds this process has used.
    """
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the request body (a webhook's JSON) to the end
        message = await receive()
        more = bool(message.get("more_body", False))
    body = b"ok"
    if scope["method"] == "POST":
        _Counter.posts += 1
    else:
        body = f"{_Counter.posts} {time.process_time()}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def received(base: str) -> tuple[int, float]:
    """How many POSTs the receiver has taken, and its CPU seconds so far."""
    with httpx.Client(trust_env=False, timeout=5) as client:
        posts, cpu = client.get(f"{base}/count").text.split()
        return int(posts), float(cpu)


@contextlib.contextmanager
def receiver(port: int, workdir: str) -> Iterator[str]:
    """Run the receiver in its own process (group) on 127.0.0.1; its base URL."""
    errors = Path(workdir) / "receiver.log"
    with errors.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.outbox_bench:receiver_app",
             "--host", HOST, "--port", str(port), "--log-level", "warning",
             "--no-access-log", "--lifespan", "off"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
        )  # fmt: skip
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the receiver exited:\n{errors.read_text()}")
            try:
                received(base)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# ---------------------------------------------------------------------------- the database


def prepare(cfg: Config, backend: str, workdir: str) -> str:
    """A fresh database for the backend, migrated by the project's migrations; its URL."""
    if backend == "postgresql":
        psql(cfg, f'DROP DATABASE IF EXISTS "{cfg.database}" WITH (FORCE)', database="postgres",
             timeout=60)  # fmt: skip
        psql(cfg, f'CREATE DATABASE "{cfg.database}"', database="postgres", timeout=60)
        url = pg_url(cfg)
    else:
        url = f"sqlite+aiosqlite:///{workdir}/outbox.db"
    migrate.upgrade(url)
    return url


def drop(cfg: Config, backend: str) -> None:
    """Drop the PostgreSQL bench database (the SQLite file goes with the temp directory)."""
    if backend == "postgresql":
        psql(cfg, f'DROP DATABASE IF EXISTS "{cfg.database}" WITH (FORCE)', database="postgres",
             timeout=60)  # fmt: skip


async def seed(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], count: int
) -> pool_service.PoolConfig:
    """A pool of `count` numbers through the service's code, then TTL and cooldown 0."""
    now = utc_now()
    async with sessionmaker() as db:
        await pool_service.create(
            db,
            name=POOL,
            destination="+12125550100",
            fallback_number="+12125550199",
            lease_ttl_seconds=1,  # the API's minimum; 0 below
            cooldown_seconds=0,
            region="US",
            now=now,
        )
        await pool_service.add_numbers(
            db, name=POOL, raw_numbers=us_numbers(count), region="US", now=now
        )
        await db.commit()
    async with engine.begin() as conn:
        # Below the API's minimum on purpose: a number is free again as soon as it is leased,
        # so the pool never runs dry however many sessions the bench makes.
        await conn.execute(
            text("UPDATE pool SET lease_ttl_seconds = 0, cooldown_seconds = 0 WHERE name = :n"),
            {"n": POOL},
        )
    async with sessionmaker() as db:
        return await pool_service.resolve(db, pool_service.PoolCache(0), POOL)


async def vacuum(engine: AsyncEngine) -> None:
    """PostgreSQL: VACUUM (ANALYZE) the bench database (this machine runs no autovacuum)."""
    if engine.dialect.name != "postgresql":
        return
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(text("VACUUM (ANALYZE)"))


async def subscribe(
    sessionmaker: async_sessionmaker[AsyncSession], events: list[str] | None, url: str
) -> None:
    """Leave exactly one live subscription, to `events` (none at all for None)."""
    now = utc_now()
    async with sessionmaker() as db:
        for sub in await webhooks.list_all(db):
            await webhooks.delete(db, sub.row.id, now=now)
        if events is not None:
            await webhooks.create(
                db,
                url=url,
                events=events,
                description="outbox bench",
                active=True,
                allow_http=False,  # http to 127.0.0.1 is allowed anyway
                now=now,
            )
        await db.commit()


async def count_rows(sessionmaker: async_sessionmaker[AsyncSession], stmt: Any) -> int:
    """The single integer a count query returns."""
    async with sessionmaker() as db:
        return int(await db.scalar(stmt) or 0)


EVENTS_COUNT = select(func.count()).select_from(OutboxEvent)


def delivery_count(status: str) -> Any:
    """A count of deliveries in `status`."""
    return select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == status)


# ---------------------------------------------------------------------------- lease path


def _fields() -> list[dict[str, str | None]]:
    visitor = visits.Visitor(ip=None, user_agent="Mozilla/5.0 (outbox bench)", site_key_id=None)
    return [
        visits.session_fields(context=c, prospect={}, visitor=visitor, ip_hash_key=None)
        for c in CONTEXTS
    ]


FIELDS = _fields()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


@dataclass
class Tally:
    """What one case's leases of a repetition added up to, over its chunks."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0
    busy_ticks: int = 0
    total_ticks: int = 0
    events: int = 0
    untracked: int = 0
    chunks: int = 0
    bounded: bool = False

    def result(self) -> dict[str, Any]:
        """The figures of the repetition."""
        done = len(self.latencies)
        return {
            "leases": done,
            "chunks": self.chunks,
            "wall_s": round(self.wall, 3),
            "us_per_lease": round(self.wall / max(1, done) * 1e6, 1),
            "leases_per_s": round(done / max(1e-9, self.wall), 1),
            "p50_us": round(percentile(self.latencies, 50) * 1e6, 1),
            "p90_us": round(percentile(self.latencies, 90) * 1e6, 1),
            "p99_us": round(percentile(self.latencies, 99) * 1e6, 1),
            "bench_cpu_us_per_lease": round(self.cpu / max(1, done) * 1e6, 1),
            "machine_busy_cores": round(
                self.busy_ticks / max(1, self.total_ticks) * (os.cpu_count() or 1), 2
            ),
            "events_recorded": self.events,
            "untracked": self.untracked,
            "time_bound_hit": self.bounded,
        }


async def lease_block(
    sessionmaker: async_sessionmaker[AsyncSession],
    pool: pool_service.PoolConfig,
    tally: Tally,
    *,
    count: int,
    tasks: int,
    deadline: float,
) -> None:
    """`count` new-visitor leases split over `tasks` sequential clients, added to `tally`."""

    async def client(share: int, offset: int) -> None:
        for i in range(share):
            if time.perf_counter() > deadline:
                tally.bounded = True
                return
            started = time.perf_counter()
            async with sessionmaker() as db:  # as app.api.deps.get_db: a session, one commit
                got = await leasing.assign(
                    db,
                    pool=pool,
                    session_id=None,
                    fields=FIELDS[(offset + i) % len(FIELDS)],
                    site_key_id=None,
                    is_bot=False,
                    now=utc_now(),
                )
                await db.commit()
            tally.latencies.append(time.perf_counter() - started)
            tally.untracked += not got.tracked

    shares = [count // tasks + (1 if t < count % tasks else 0) for t in range(tasks)]
    events0 = await count_rows(sessionmaker, EVENTS_COUNT)
    busy0, total0 = machine_ticks()
    cpu0 = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(client(share, t) for t, share in enumerate(shares)))
    tally.wall += time.perf_counter() - started
    tally.cpu += time.process_time() - cpu0
    busy1, total1 = machine_ticks()
    tally.busy_ticks += busy1 - busy0
    tally.total_ticks += total1 - total0
    tally.events += await count_rows(sessionmaker, EVENTS_COUNT) - events0
    tally.chunks += 1


async def lease_phase(
    cfg: Config,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    pool: pool_service.PoolConfig,
    backend: str,
) -> dict[str, Any]:
    """Every case, every task count, `repeat` times. Within a repetition the cases take
    turns, `chunk` leases at a time, so that a neighbour's burst of load falls on all of
    them; the cases' order is rotated from one repetition to the next."""
    tasks_list = cfg.tasks if backend == "postgresql" else [1]
    url = f"http://{HOST}:9/hooks"  # never called: nothing is dispatched in this phase
    names = list(CASES)
    chunk = min(cfg.chunk or cfg.sessions, cfg.sessions)
    for tasks in tasks_list:  # warm-up: connections, statement caches, the code's first runs
        for name in names:
            await subscribe(sessionmaker, CASES[name], url)
            await lease_block(sessionmaker, pool, Tally(), count=cfg.warmup, tasks=tasks,
                              deadline=time.perf_counter() + cfg.max_seconds)  # fmt: skip
    blocks: dict[str, dict[str, list[dict[str, Any]]]] = {
        str(t): {name: [] for name in names} for t in tasks_list
    }
    for rep in range(cfg.repeat):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for tasks in tasks_list:
            calm = wait_calm(cfg.max_load, cfg.calm_wait, pause=1.0)
            tallies = {name: Tally() for name in names}
            deadline = time.perf_counter() + cfg.max_seconds * len(names)
            for start in range(0, cfg.sessions, chunk):
                await vacuum(engine)  # this machine runs no autovacuum
                for name in order:
                    await subscribe(sessionmaker, CASES[name], url)
                    await lease_block(sessionmaker, pool, tallies[name], tasks=tasks,
                                      count=min(chunk, cfg.sessions - start),
                                      deadline=deadline)  # fmt: skip
            for name in order:
                block = tallies[name].result()
                block.update(rep=rep, position=order.index(name), calm=calm)
                blocks[str(tasks)][name].append(block)
                log(
                    f"{backend} lease rep {rep} tasks {tasks} {name}: "
                    f"{block['us_per_lease']} us/lease, p50 {block['p50_us']} us, "
                    f"p99 {block['p99_us']} us, {block['events_recorded']} events, "
                    f"busy {block['machine_busy_cores']}"
                )
    await subscribe(sessionmaker, None, url)
    return blocks


# ---------------------------------------------------------------------------- dispatcher


def _package(filename: str) -> str:
    """Who owns the code in `filename`: a site package, the service, or the standard library."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if f"{ROOT}/app/" in filename:
        return "app/" + filename.split(f"{ROOT}/app/", 1)[1].split("/", 1)[0]
    if filename.startswith("<") or filename == "~":
        return "builtins"
    if "/asyncio/" in filename:
        return "stdlib asyncio"
    return "stdlib " + Path(filename).stem


def profile_report(profiler: cProfile.Profile, backend: str, run: dict[str, Any]) -> None:
    """Where a profiled dispatcher run spent its CPU: own time by package, then the top
    functions; kept under bench/results/ (cProfile slows the run: its rate is not a result)."""
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    by_package: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        key = _package(filename)
        by_package[key] = by_package.get(key, 0.0) + tottime
    total = sum(by_package.values()) or 1.0
    out = io.StringIO()
    out.write(f"{backend}, concurrency {run['concurrency']}, {run['delivered']} deliveries\n")
    out.write(f"own CPU {total:.2f} s, {total / max(1, run['delivered']) * 1e3:.2f} ms each\n\n")
    for key, seconds in sorted(by_package.items(), key=lambda kv: -kv[1])[:25]:
        out.write(f"{seconds / total:6.1%}  {key}\n")
    out.write("\n")
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)
    path = (
        ROOT
        / "bench"
        / "results"
        / f"outbox-profile-{backend}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    )
    path.parent.mkdir(exist_ok=True)
    path.write_text(out.getvalue())
    log(f"profile: {path}")


class TimedDispatcher(Dispatcher):
    """The service's Dispatcher, also adding up the time its rounds spend fanning out."""

    fan_out_s = 0.0
    fan_out_cpu = 0.0
    fanned = 0

    async def _fan_out(self) -> int:
        started, cpu = time.perf_counter(), time.process_time()
        done = await super()._fan_out()
        self.fan_out_s += time.perf_counter() - started
        self.fan_out_cpu += time.process_time() - cpu  # nothing else runs while it does
        self.fanned += done
        return done


async def record_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    pool: pool_service.PoolConfig,
    count: int,
    max_seconds: float,
) -> int:
    """`count` new visitors through the lease path, each recording session.created."""
    tally = Tally()
    deadline = time.perf_counter() + max_seconds
    await lease_block(sessionmaker, pool, tally, count=count, tasks=1, deadline=deadline)
    return tally.events


async def dispatch_run(
    cfg: Config,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    pool: pool_service.PoolConfig,
    base: str,
    concurrency: int,
    profiler: cProfile.Profile | None = None,
) -> dict[str, Any]:
    """Record K events, then time run_once() in a loop until all are delivered."""
    settings = Settings(database_url=str(engine.url), outbox_concurrency=concurrency)
    worker = TimedDispatcher(sessionmaker=sessionmaker, settings=settings, clock=utc_now)
    try:
        await worker.run_once()  # its first round prunes; nothing is queued yet
        recorded = await record_events(sessionmaker, pool, cfg.events, cfg.max_seconds)
        await vacuum(engine)
        worker.fan_out_s, worker.fan_out_cpu, worker.fanned = 0.0, 0.0, 0
        delivered0 = await count_rows(sessionmaker, delivery_count("delivered"))
        posts0, receiver_cpu0 = received(base)
        calm = wait_calm(cfg.max_load, cfg.calm_wait, pause=1.0)
        max_rounds = cfg.events // concurrency * 2 + 20
        rounds = attempted = 0
        bounded = False
        busy0, total0 = machine_ticks()
        cpu0 = time.process_time()
        if profiler is not None:
            profiler.enable()
        started = time.perf_counter()
        while True:
            if rounds >= max_rounds or time.perf_counter() - started > cfg.max_seconds:
                bounded = True
                break
            tried = await worker.run_once()
            rounds += 1
            attempted += tried
            if tried == 0:
                break
        if profiler is not None:
            profiler.disable()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        busy1, total1 = machine_ticks()
        posts, receiver_cpu = received(base)
        delivered = await count_rows(sessionmaker, delivery_count("delivered")) - delivered0
        send_s = wall - worker.fan_out_s
        return {
            "concurrency": concurrency,
            "events": recorded,
            "fanned_out": worker.fanned,
            "attempted": attempted,
            "delivered": delivered,
            "receiver_got": posts - posts0,
            "pending_left": await count_rows(sessionmaker, delivery_count("pending")),
            "rounds": rounds,
            "wall_s": round(wall, 3),
            "fan_out_s": round(worker.fan_out_s, 3),
            "deliveries_per_s": round(delivered / wall, 1),
            "fan_out_events_per_s": round(worker.fanned / max(1e-9, worker.fan_out_s), 1),
            "send_deliveries_per_s": round(delivered / max(1e-9, send_s), 1),
            "dispatcher_cpu_ms_per_delivery": round(cpu / max(1, delivered) * 1e3, 3),
            "dispatcher_cores": round(cpu / wall, 2),
            "fan_out_cpu_ms_per_event": round(worker.fan_out_cpu / max(1, worker.fanned) * 1e3, 3),
            "send_cpu_ms_per_delivery": round(
                (cpu - worker.fan_out_cpu) / max(1, delivered) * 1e3, 3
            ),
            "receiver_cpu_ms_per_delivery": round(
                (receiver_cpu - receiver_cpu0) / max(1, delivered) * 1e3, 3
            ),
            "machine_busy_cores": round(
                (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1), 2
            ),
            "bound_hit": bounded,
            "calm": calm,
        }
    finally:
        await worker.aclose()


async def http_only(base: str, concurrency: int, count: int) -> dict[str, Any]:
    """The dispatcher's HTTP alone: `count` signed POSTs of a session.created-sized body,
    `concurrency` at a time and each round awaited, with the client the dispatcher makes."""
    body = json.dumps(
        {
            "id": "evt_" + "0" * 24,
            "type": outbox.SESSION_CREATED,
            "created_at": "2026-11-27T06:00:00.000000Z",
            "data": {
                "session_id": "x" * 24,
                "created_at": "2026-11-27T06:00:00.000000Z",
                "source": "google",
                "medium": "cpc",
                "campaign": "spring-1",
                "landing_page": "https://shop.example/offer/1",
                "context": {**CONTEXTS[0], "referrer": None, "gclid": None, "fbclid": None},
                "prospect": {"email": None, "phone": None, "fullname": None},
            },
        },
        separators=(",", ":"),
    )
    sent = ok = 0
    secret = signing.new_secret()
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:

        async def one() -> bool:
            out = delivery_requests.webhook(
                url=base + "/hooks", secret=secret, payload=body, event_id="evt_bench",
                kind=outbox.SESSION_CREATED, attempt=1, now=utc_now(),
            )  # fmt: skip
            async with client.stream(
                "POST", out.url, content=out.body, headers=out.headers, timeout=10
            ) as response:
                return response.status_code == 200

        await one()  # the connection, opened once as the dispatcher's would be
        cpu0 = time.process_time()
        started = time.perf_counter()
        while sent < count:
            batch = min(concurrency, count - sent)
            ok += sum(await asyncio.gather(*(one() for _ in range(batch))))
            sent += batch
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    return {
        "concurrency": concurrency,
        "requests": sent,
        "ok": ok,
        "body_bytes": len(body),
        "requests_per_s": round(sent / wall, 1),
        "cpu_ms_per_request": round(cpu / sent * 1e3, 3),
    }


async def run_loop(
    cfg: Config,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    pool: pool_service.PoolConfig,
    base: str,
) -> list[dict[str, Any]]:
    """The dispatcher as the service runs it (`run()`, polling), on a backlog already fanned
    out, for `run_loop_seconds` at each concurrency."""
    settings = Settings(database_url=str(engine.url), outbox_poll_seconds=cfg.poll_seconds)
    fan = TimedDispatcher(sessionmaker=sessionmaker, settings=settings, clock=utc_now)
    await record_events(sessionmaker, pool, cfg.events, cfg.max_seconds)
    try:
        for _ in range(cfg.events // 100 + 2):  # bounded: 100 events a round
            if await fan._fan_out() == 0:
                break
    finally:
        await fan.aclose()
    await vacuum(engine)
    results = []
    for concurrency in cfg.concurrency:
        worker = Dispatcher(
            sessionmaker=sessionmaker,
            settings=settings.model_copy(update={"outbox_concurrency": concurrency}),
            clock=utc_now,
        )
        delivered0 = await count_rows(sessionmaker, delivery_count("delivered"))
        stop = asyncio.Event()
        started = time.perf_counter()
        running = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(cfg.run_loop_seconds)
        stop.set()
        await asyncio.wait_for(running, timeout=settings.outbox_timeout_seconds + 30)
        wall = time.perf_counter() - started
        delivered = await count_rows(sessionmaker, delivery_count("delivered")) - delivered0
        results.append(
            {
                "concurrency": concurrency,
                "poll_seconds": cfg.poll_seconds,
                "seconds": round(wall, 2),
                "delivered": delivered,
                "deliveries_per_s": round(delivered / wall, 1),
                "backlog_left": await count_rows(sessionmaker, delivery_count("pending")),
            }
        )
        log(f"run loop c={concurrency}: {results[-1]}")
    return results


async def dispatch_phase(
    cfg: Config,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    pool: pool_service.PoolConfig,
    backend: str,
    base: str,
) -> dict[str, Any]:
    """The run_once() runs, the concurrencies' order alternated, then the run() loop."""
    await subscribe(sessionmaker, [outbox.SESSION_CREATED], base + "/hooks")
    runs: dict[str, list[dict[str, Any]]] = {str(c): [] for c in cfg.concurrency}
    for rep in range(cfg.dispatch_repeat):
        order = cfg.concurrency if rep % 2 == 0 else cfg.concurrency[::-1]
        for concurrency in order:
            run = await dispatch_run(cfg, engine, sessionmaker, pool, base, concurrency)
            run["rep"] = rep
            runs[str(concurrency)].append(run)
            log(
                f"{backend} dispatch rep {rep} c={concurrency}: {run['deliveries_per_s']}/s "
                f"({run['delivered']}/{run['events']} delivered, fan-out "
                f"{run['fan_out_events_per_s']}/s, {run['rounds']} rounds)"
            )
    if cfg.profile:
        profiler = cProfile.Profile(time.process_time)
        run = await dispatch_run(
            cfg, engine, sessionmaker, pool, base, cfg.concurrency[0], profiler
        )
        profile_report(profiler, backend, run)
    loop = await run_loop(cfg, engine, sessionmaker, pool, base) if cfg.run_loop_seconds else []
    await subscribe(sessionmaker, None, base)
    return {"run_once": runs, "run_loop": loop}


# ---------------------------------------------------------------------------- main


async def measure(cfg: Config, backend: str, url: str, base: str) -> dict[str, Any]:
    """Seed, then the phases asked for, on one backend."""
    engine = make_engine(url, pool_size=cfg.db_pool_size)
    try:
        sessionmaker = make_sessionmaker(engine)
        pool = await seed(engine, sessionmaker, cfg.numbers)
        outbox.wanted.forget()
        result: dict[str, Any] = {}
        if "lease" in cfg.phases:
            result["lease"] = await lease_phase(cfg, engine, sessionmaker, pool, backend)
        if "dispatch" in cfg.phases:
            result["dispatch"] = await dispatch_phase(
                cfg, engine, sessionmaker, pool, backend, base
            )
        return result
    finally:
        await engine.dispose()


def _spread(values: Sequence[float], digits: int = 0) -> str:
    if not values:
        return "-"
    fmt = f"{{:,.{digits}f}}"
    return fmt.format(min(values)) + "-" + fmt.format(max(values))


def summarise(results: dict[str, Any], baseline: list[dict[str, Any]]) -> str:
    """The Markdown tables of a run."""
    lines = ["## Lease path: new visitor, `assign()` + commit, µs per lease", ""]
    lines.append(
        "| backend | tasks | case | µs/lease (median) | range | p50 µs | p99 µs | events/lease "
        "| bench CPU µs/lease | / case (a), median | range | + µs vs (a), median |"
    )
    lines.append("|---|---:|---|---:|---|---:|---:|---:|---:|---:|---|---:|")
    for backend, found in results.items():
        for tasks, cases in found.get("lease", {}).items():
            base = cases["none"]
            for name, blocks in cases.items():
                us = [b["us_per_lease"] for b in blocks]
                ratios = [
                    b["us_per_lease"] / a["us_per_lease"] for b, a in zip(blocks, base, strict=True)
                ]
                extra = [
                    b["us_per_lease"] - a["us_per_lease"] for b, a in zip(blocks, base, strict=True)
                ]
                leases = sum(b["leases"] for b in blocks)
                events = sum(b["events_recorded"] for b in blocks) / max(1, leases)
                lines.append(
                    f"| {backend} | {tasks} | {name} | {median(us):,.0f} | {_spread(us)} "
                    f"| {median([b['p50_us'] for b in blocks]):,.0f} "
                    f"| {median([b['p99_us'] for b in blocks]):,.0f} | {events:.2f} "
                    f"| {median([b['bench_cpu_us_per_lease'] for b in blocks]):,.0f} "
                    f"| {median(ratios):.3f} | {_spread(ratios, 3)} | {median(extra):+,.0f} |"
                )
    lines += ["", "## Dispatcher: run_once() in a loop, receiver on 127.0.0.1", ""]
    lines.append(
        "| backend | concurrency | deliveries/s (median) | runs | fan-out events/s "
        "| sending deliveries/s | delivered / events | receiver got "
        "| dispatcher CPU ms/delivery | of which fan-out ms/event | dispatcher cores "
        "| receiver CPU ms/delivery |"
    )
    lines.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backend, found in results.items():
        for concurrency, runs in found.get("dispatch", {}).get("run_once", {}).items():
            rates = [r["deliveries_per_s"] for r in runs]
            lines.append(
                f"| {backend} | {concurrency} | {median(rates):,.0f} "
                f"| {', '.join(f'{r:,.0f}' for r in rates)} "
                f"| {median([r['fan_out_events_per_s'] for r in runs]):,.0f} "
                f"| {median([r['send_deliveries_per_s'] for r in runs]):,.0f} "
                f"| {sum(r['delivered'] for r in runs)} / {sum(r['events'] for r in runs)} "
                f"| {sum(r['receiver_got'] for r in runs)} "
                f"| {median([r['dispatcher_cpu_ms_per_delivery'] for r in runs]):.2f} "
                f"| {median([r['fan_out_cpu_ms_per_event'] for r in runs]):.2f} "
                f"| {median([r['dispatcher_cores'] for r in runs]):.2f} "
                f"| {median([r['receiver_cpu_ms_per_delivery'] for r in runs]):.2f} |"
            )
    lines += ["", "## HTTP alone: the dispatcher's client, signed POSTs, rounds awaited", ""]
    lines.append("| concurrency | requests/s (median) | runs | CPU ms/request | ok |")
    lines.append("|---:|---:|---|---:|---:|")
    for concurrency in sorted({r["concurrency"] for r in baseline}):
        runs = [r for r in baseline if r["concurrency"] == concurrency]
        rates = [r["requests_per_s"] for r in runs]
        lines.append(
            f"| {concurrency} | {median(rates):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} "
            f"| {median([r['cpu_ms_per_request'] for r in runs]):.2f} "
            f"| {sum(r['ok'] for r in runs)} / {sum(r['requests'] for r in runs)} |"
        )
    lines += ["", "## Dispatcher: its own run() loop on a backlog", ""]
    lines.append("| backend | concurrency | poll s | seconds | delivered | deliveries/s |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for backend, found in results.items():
        for r in found.get("dispatch", {}).get("run_loop", []):
            lines.append(
                f"| {backend} | {r['concurrency']} | {r['poll_seconds']} | {r['seconds']} "
                f"| {r['delivered']} | {r['deliveries_per_s']} |"
            )
    return "\n".join(lines)


def ints(value: str) -> list[int]:
    """A comma-separated list of integers."""
    return [int(x) for x in value.split(",") if x]


def parse_args(argv: Sequence[str] | None) -> Config:
    """The command line as a Config."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--phases", default="lease,dispatch")
    parser.add_argument("--sessions", type=int, default=2000, help="new sessions per block")
    parser.add_argument(
        "--chunk", type=int, default=250, help="leases per turn of a case; 0: all N at once"
    )
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of the lease blocks")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured leases per case")
    parser.add_argument("--tasks", type=ints, default=[1, 8], help="PostgreSQL; SQLite: 1")
    parser.add_argument("--events", type=int, default=2000, help="events per dispatcher run")
    parser.add_argument("--concurrency", type=ints, default=[8, 32])
    parser.add_argument("--dispatch-repeat", type=int, default=3)
    parser.add_argument("--run-loop-seconds", type=float, default=10.0, help="0: skip")
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="for the run() loop")
    parser.add_argument("--numbers", type=int, default=200, help="numbers in the pool")
    parser.add_argument("--db-pool-size", type=int, default=10, help="as the service's default")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="bound of any one block")
    parser.add_argument(
        "--max-load", type=float, default=3.0, help="1-min load average (the bench's own counts)"
    )
    parser.add_argument(
        "--calm-wait", type=float, default=10.0, help="seconds to wait for <0.3 busy cores"
    )
    parser.add_argument("--port", type=int, default=0, help="receiver port; 0: a free one")
    parser.add_argument(
        "--profile", action="store_true", help="one more dispatcher run, under cProfile"
    )
    parser.add_argument("--pg-host", default=HOST)
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--database", default="ct_bench_outbox")
    a = parser.parse_args(argv)
    if a.sessions < 1 or a.events < 1 or a.repeat < 1 or a.dispatch_repeat < 1:
        parser.error("--sessions, --events, --repeat and --dispatch-repeat must be positive")
    if any(c < 1 or c > 64 for c in a.concurrency) or any(t < 1 for t in a.tasks):
        parser.error("--concurrency: 1-64 (the setting's range); --tasks: positive")
    return Config(
        backends=a.backends.split(","),
        phases=a.phases.split(","),
        sessions=a.sessions,
        chunk=a.chunk,
        repeat=a.repeat,
        warmup=a.warmup,
        tasks=a.tasks,
        events=a.events,
        concurrency=a.concurrency,
        dispatch_repeat=a.dispatch_repeat,
        run_loop_seconds=a.run_loop_seconds,
        poll_seconds=a.poll_seconds,
        numbers=a.numbers,
        db_pool_size=a.db_pool_size,
        max_seconds=a.max_seconds,
        max_load=a.max_load,
        calm_wait=a.calm_wait,
        port=a.port,
        profile=a.profile,
        pg_host=a.pg_host,
        pg_port=a.pg_port,
        pg_user=a.pg_user,
        database=a.database,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every backend, keep the JSON, print the Markdown summary."""
    cfg = parse_args(argv)
    signal.signal(signal.SIGTERM, terminate)
    app_changes = subprocess.run(
        ["git", "status", "--porcelain", "app", "migrations"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    results: dict[str, Any] = {}
    baseline: list[dict[str, Any]] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    with (
        tempfile.TemporaryDirectory() as workdir,
        receiver(cfg.port or free_port(), workdir) as base,
    ):
        if "dispatch" in cfg.phases:
            baseline = [
                asyncio.run(http_only(base, c, cfg.events))
                for rep in range(cfg.dispatch_repeat)
                for c in (cfg.concurrency if rep % 2 == 0 else cfg.concurrency[::-1])
            ]
            log(f"HTTP alone: {baseline}")
        for backend in cfg.backends:
            url = prepare(cfg, backend, workdir)
            try:
                log(f"{backend}: migrated, measuring")
                results[backend] = asyncio.run(measure(cfg, backend, url, base))
            finally:
                drop(cfg, backend)
    record = {
        "started": started,
        "app_changes": app_changes,
        "cores": os.cpu_count(),
        "config": asdict(cfg),
        "results": results,
        "http_only": baseline,
    }
    keep_result("outbox", record)
    print()
    print(summarise(results, baseline))


if __name__ == "__main__":
    main()
