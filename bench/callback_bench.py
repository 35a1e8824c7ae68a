"""Callback queue benchmark: POST /callback through the queue to the emulator's calls.

A fresh PostgreSQL database, migrated with `calltrack migrate`. One `calltrack serve`
process holds the API, the webhooks and the built-in Cloudonix emulator (which only runs in
one process); the callback worker runs in it (`inproc`) or as N `calltrack worker`
processes next to it. Pacing is lifted (CALLTRACK_CLOUDONIX_RATE_REQUESTS=1000000 per 1 s)
and the emulator plays its calls fast (CALLTRACK_EMULATOR_SPEED=1000: the agent rings 2
virtual seconds, the customer 2, the conversation lasts 30). For each configuration:

- throughput: K requests queued as fast as a small async client can (that rate is reported
  too) into a pool that is closed for business, so the service itself parks them as
  `scheduled`; then the pool opens (PATCH business_hours null) and one UPDATE makes them
  all due at once; how fast the workers turn the queue into calls (originated/s), and
  completions per second from the first attempt to the last completion;
- latency: Poisson arrivals at a modest rate (open loop), and for each request the delay
  from the moment POST /callback returned to the worker recording its attempt ("originate
  started", callback_attempt.created_at) and to the emulator creating the agent's call
  (its session's callStartTime, which the emulator's virtual clock starts from), p50/p99.

    python -m bench.callback_bench [--configs inproc,1,4] [--requests 100] [--repeat 3]
        [--rate 5] [--open-duration 20] [--phases throughput,latency]
        [--emulator inline|separate] [--poll 1] [--stagger] [--access-log]

`--emulator separate` runs `calltrack emulator` as its own process, which the service and
its workers reach as Cloudonix (CALLTRACK_PROVIDER=cloudonix): the serve process then only
does the service's own work.

Every load targets 127.0.0.1 only and is bounded in count and time. The processes are
stopped and the database dropped at the end, also on an error, Ctrl-C or SIGTERM.
Results: JSON under bench/results/ and a Markdown summary on stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.db.models import CALLBACK_ACTIVE
from app.errors import AppError
from app.services.callbacks import callable_number
from bench.common import log as _log
from bench.common import median as _median
from bench.common import psql as _psql
from bench.common import sqlalchemy_url as _sqlalchemy_url
from bench.common import terminate as _terminate
from bench.common import wait_calm as _wait_calm
from bench.lease_bench import (
    CpuSnapshot,
    _port_free,
    _proc_stat,
    calltrack_bin,
    cpu_snapshot,
    cpu_split,
    stop_processes,
    us_numbers,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
HOST = "127.0.0.1"  # every load targets this machine only
DOMAIN = "calltrack.emulator"  # the emulator's domain (CALLTRACK_CLOUDONIX_DOMAIN unset)
# The pool's agents: an agent on a callback call is not rung for another, so the queue's
# throughput needs as many agents as calls in progress (20 is the most a pool takes).
AGENTS = [f"+1212555{111 + n:04d}" for n in range(20)]
DESTINATION = "+12125550100"
FALLBACK = "+12125550199"
FINAL = ("completed", "failed", "cancelled")
ACTIVE_SQL = "(" + ", ".join(f"'{status}'" for status in CALLBACK_ACTIVE) + ")"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Config:
    """What the command line asked for."""

    configs: list[str]
    requests: int
    clients: int
    repeat: int
    rate: float
    open_duration: int
    phases: list[str]
    poll: float
    concurrency: int
    speed: float
    db_pool_size: int
    emulator: str
    access_log: bool
    stagger: bool
    drain_timeout: int
    stall_timeout: int
    max_load: float
    calm_wait: int
    base_port: int
    pg_host: str
    pg_port: int
    pg_user: str
    database: str
    keep_db: bool
    results_dir: Path
    seed: int
    agents: int


@dataclass(frozen=True)
class Layout:
    """Where the callback worker runs: in `calltrack serve`, or in N worker processes."""

    name: str
    processes: int  # worker processes; 0: the one inside calltrack serve
    concurrency: int  # CALLTRACK_CALLBACK_CONCURRENCY of each worker

    @classmethod
    def parse(cls, spec: str, default_concurrency: int) -> Layout:
        """'inproc', 'N', 'inprocxC' or 'NxC' (C: requests each worker handles at once)."""
        head, _, tail = spec.partition("x")
        concurrency = int(tail) if tail else default_concurrency
        processes = 0 if head == "inproc" else int(head)
        if processes < 0 or not 1 <= concurrency <= 64:
            raise ValueError(f"bad configuration {spec!r}")
        return cls(spec, processes, concurrency)

    @property
    def label(self) -> str:
        """How the README names it."""
        where = "in serve" if self.processes == 0 else f"{self.processes} worker process"
        if self.processes > 1:
            where += "es"
        return f"{where}, concurrency {self.concurrency}"


# ---------------------------------------------------------------------------- PostgreSQL


def psql(cfg: Config, sql: str, *, database: str = "postgres") -> str:
    """Run SQL with psql and return its unaligned output."""
    return _psql(cfg, sql, database=database, timeout=120)


def sqlalchemy_url(cfg: Config) -> str:
    """The service's database URL for the bench database."""
    return _sqlalchemy_url(cfg)


def dsn(cfg: Config) -> str:
    """The same database for asyncpg."""
    return f"postgresql://{cfg.pg_user}@{cfg.pg_host}:{cfg.pg_port}/{cfg.database}"


def prepare_database(cfg: Config, secrets_env: dict[str, str]) -> None:
    """Drop and recreate the bench database and migrate it."""
    psql(cfg, f'DROP DATABASE IF EXISTS "{cfg.database}" WITH (FORCE)')
    psql(cfg, f'CREATE DATABASE "{cfg.database}"')
    env = service_env(cfg, secrets_env)
    subprocess.run([str(calltrack_bin()), "migrate"], check=True, env=env, cwd=REPO, timeout=300)


def customer_numbers(count: int) -> list[str]:
    """`count` distinct numbers the service agrees to call back (its own validation)."""
    found = []
    for raw in us_numbers(count * 2):
        try:
            found.append(callable_number(raw, region="US", countries=["US"]))
        except AppError:
            continue
        if len(found) == count:
            return found
    raise ValueError(f"could not make {count} callable numbers")


# ---------------------------------------------------------------------------- processes


def service_env(cfg: Config, secrets_env: dict[str, str]) -> dict[str, str]:
    """Environment of every `calltrack` process of the benchmark."""
    env = dict(os.environ)
    env.update(secrets_env)
    env.update(
        {
            "CALLTRACK_DATABASE_URL": sqlalchemy_url(cfg),
            "CALLTRACK_EMULATOR_URL": f"http://{HOST}:{cfg.base_port}/emulator",
            # Pacing lifted: the adapter's Pacer and the emulator's 429s both read these.
            "CALLTRACK_CLOUDONIX_RATE_REQUESTS": "1000000",
            "CALLTRACK_CLOUDONIX_RATE_PERIOD": "1",
            "CALLTRACK_EMULATOR_SPEED": f"{cfg.speed:g}",
            "CALLTRACK_PUBLIC_RATE_LIMIT": "off",  # every request comes from 127.0.0.1
            "CALLTRACK_CALLBACK_RATE_LIMIT": "off",
            "CALLTRACK_CALLBACK_NUMBER_LIMIT": "100",  # every request names its own number
            "CALLTRACK_CALLBACK_POLL_SECONDS": f"{cfg.poll:g}",
            "CALLTRACK_CALLBACK_DRAIN_SECONDS": "2",
            "CALLTRACK_LOG_LEVEL": "WARNING",  # no access log line per request
        }
    )
    if cfg.db_pool_size:
        env["CALLTRACK_DB_POOL_SIZE"] = str(cfg.db_pool_size)
    if cfg.emulator == "separate":
        # The service and its workers talk to the emulator as to Cloudonix, at its own port.
        key = secrets_env["CALLTRACK_EMULATOR_API_KEY"]
        env.update(
            {
                "CALLTRACK_PROVIDER": "cloudonix",
                "CALLTRACK_CLOUDONIX_API_KEY": key,
                "CALLTRACK_CLOUDONIX_DOMAIN": DOMAIN,
                "CALLTRACK_CLOUDONIX_BASE_URL": f"http://{HOST}:{cfg.base_port + 1}/emulator",
                "CALLTRACK_PUBLIC_URL": f"http://{HOST}:{cfg.base_port}",
            }
        )
    return env


def emulator_env(cfg: Config, secrets_env: dict[str, str]) -> dict[str, str]:
    """Environment of a `calltrack emulator` process (--emulator separate)."""
    env = dict(os.environ)
    env.update(secrets_env)
    env.update(
        {
            "CALLTRACK_CLOUDONIX_DOMAIN": DOMAIN,
            "CALLTRACK_CLOUDONIX_RATE_REQUESTS": "1000000",
            "CALLTRACK_CLOUDONIX_RATE_PERIOD": "1",
            "CALLTRACK_EMULATOR_SPEED": f"{cfg.speed:g}",
            "CALLTRACK_LOG_LEVEL": "WARNING",
        }
    )
    return env


@dataclass
class Setup:
    """The serve process, the worker processes and the emulator of one configuration."""

    layout: Layout
    serve: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    emulator: subprocess.Popen[bytes] | None
    port: int
    log_dir: Path
    # When each worker's loop began (its "started" log line), seconds after the first.
    workers_started: list[float] = field(default_factory=list)

    @property
    def base(self) -> str:
        """The service's base URL."""
        return f"http://{HOST}:{self.port}"

    @property
    def emulator_base(self) -> str:
        """Where the emulator's /emulator routes are: in serve, or at the next port."""
        return f"http://{HOST}:{self.port + (1 if self.emulator else 0)}"


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, log_dir: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited; see {log_dir}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready in 60 s; see {log_dir}")


def _wait_workers(setup: Setup) -> None:
    # Each worker logs "callback worker <name> started" (INFO) as its loop begins.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(w.poll() is not None for w in setup.workers):
            raise RuntimeError(f"a calltrack worker exited; see {setup.log_dir}")
        started = sum(
            "callback worker" in log.read_text(errors="replace")
            for log in setup.log_dir.glob("worker-*.log")
        )
        if started >= len(setup.workers):
            setup.workers_started = _started_times(setup)
            return
        time.sleep(0.2)
    raise RuntimeError(f"calltrack workers not started in 60 s; see {setup.log_dir}")


def _started_at(log: Path) -> float | None:
    """When a worker's loop began: the time of its "callback worker ... started" line."""
    for line in log.read_text(errors="replace").splitlines():
        if "callback worker" in line and "started" in line:
            with contextlib.suppress(ValueError, KeyError):
                return datetime.fromisoformat(json.loads(line)["ts"]).timestamp()
    return None


def _started_times(setup: Setup) -> list[float]:
    found = [_started_at(log) for log in sorted(setup.log_dir.glob("worker-*.log"))]
    times = [t for t in found if t is not None]
    return [round(t - min(times), 3) for t in times] if times else []


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # Its own process group, so that stopping it stops whatever it started.
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=out, stderr=out, start_new_session=True
        )


@contextlib.contextmanager
def run_setup(cfg: Config, layout: Layout, secrets_env: dict[str, str]) -> Iterator[Setup]:
    """Start serve (the emulator, the workers), wait until all are up, stop all on the way out."""
    ports = [cfg.base_port] + ([cfg.base_port + 1] if cfg.emulator == "separate" else [])
    if busy := [p for p in ports if not _port_free(p)]:
        raise SystemExit(f"ports in use: {busy}; pick another --base-port")
    env = service_env(cfg, secrets_env)
    env["CALLTRACK_CALLBACK_CONCURRENCY"] = str(layout.concurrency)
    serve_env = dict(env, CALLTRACK_CALLBACK_WORKER="true" if layout.processes == 0 else "false")
    if cfg.access_log:
        serve_env["CALLTRACK_LOG_LEVEL"] = "INFO"  # one line per request, with its duration
    worker_env = dict(env, CALLTRACK_LOG_LEVEL="INFO")  # its INFO lines: start and stop only
    log_dir = Path(tempfile.mkdtemp(prefix="calltrack-callback-bench-"))
    bin_ = str(calltrack_bin())
    serve = _start(
        [bin_, "serve", "--host", HOST, "--port", str(cfg.base_port)],
        serve_env,
        log_dir / "serve.log",
    )
    setup = Setup(layout, serve, [], None, cfg.base_port, log_dir)
    failed = True
    try:
        if cfg.emulator == "separate":
            cmd = [bin_, "emulator", "--host", HOST, "--port", str(cfg.base_port + 1)]
            cmd += ["--service-url", setup.base]
            setup.emulator = _start(cmd, emulator_env(cfg, secrets_env), log_dir / "emulator.log")
            _wait_http(
                f"{setup.emulator_base}/emulator/faults", setup.emulator, "emulator", log_dir
            )
        _wait_http(f"{setup.base}/readyz", serve, "calltrack serve", log_dir)
        first = startup = 0.0
        for index in range(layout.processes):
            if cfg.stagger and index:
                # Started together, workers poll in step, and stay so (the interval has no
                # jitter). Staggered: worker i's loop begins i/N of a poll interval after
                # worker 0's (modulo the interval), from the previous worker's start-up time.
                target = first + index * cfg.poll / layout.processes
                time.sleep((target - (time.time() + startup)) % cfg.poll)
            log = log_dir / f"worker-{index}.log"
            spawned = time.time()
            setup.workers.append(_start([bin_, "worker"], worker_env, log))
            if cfg.stagger:
                _wait_workers(setup)
                began = _started_at(log) or time.time()
                first, startup = (began if index == 0 else first), began - spawned
        _wait_workers(setup)
        yield setup
        failed = False
    finally:
        stop_processes(setup.workers)  # first: they hand their claims back
        stop_processes([serve])
        if setup.emulator is not None:
            stop_processes([setup.emulator])
        if failed:
            _log(f"logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


def log_problems(setup: Setup) -> list[str]:
    """Lines logged at WARNING or above (the processes log JSON), and tracebacks."""
    found = []
    for log in sorted(setup.log_dir.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if '"level": "warning"' in line or '"level": "error"' in line or "Traceback" in line:
                found.append(f"{log.stem}: {line[:300]}")
    return found


def access_summary(setup: Setup, skip: int) -> tuple[dict[str, Any], int]:
    """Requests serve logged after its first `skip` access lines (--access-log): count and
    duration per route; and the new number of access lines."""
    durations: dict[str, list[float]] = {}
    seen = 0
    for line in (setup.log_dir / "serve.log").read_text(errors="replace").splitlines():
        if '"calltrack.access"' not in line:
            continue
        seen += 1
        if seen <= skip:
            continue
        with contextlib.suppress(ValueError, KeyError):
            entry = json.loads(line)
            key = f"{entry['method']} {entry['route']}"
            durations.setdefault(key, []).append(float(entry["duration_ms"]))
    routes = {
        key: {
            "n": len(values),
            "total_s": round(sum(values) / 1000, 2),
            "p50_ms": round(_pct(sorted(values), 50), 1),
            "p99_ms": round(_pct(sorted(values), 99), 1),
        }
        for key, values in sorted(durations.items(), key=lambda kv: -sum(kv[1]))
    }
    return routes, seen


# ---------------------------------------------------------------------------- CPU


@dataclass
class Cpu:
    """Clock ticks of serve, of the workers, and the machine-wide split."""

    serve: int
    workers: int
    emulator: int
    machine: CpuSnapshot


def _ticks(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        stat = _proc_stat(pid)
        if stat is not None:
            total += stat[2]
    return total


def cpu_now(setup: Setup) -> Cpu:
    """Ticks used so far: serve, the workers, and the whole machine's split."""
    emulator = [setup.emulator.pid] if setup.emulator is not None else []
    pids = [setup.serve.pid, *(w.pid for w in setup.workers), *emulator]
    return Cpu(
        serve=_ticks([setup.serve.pid]),
        workers=_ticks([w.pid for w in setup.workers]),
        emulator=_ticks(emulator),
        machine=cpu_snapshot(pids),
    )


def cpu_between(before: Cpu, after: Cpu) -> dict[str, float]:
    """Cores used on average: serve, workers, PostgreSQL, this harness, everything else."""
    split = cpu_split(before.machine, after.machine)
    wall = after.machine.at - before.machine.at
    tck = os.sysconf("SC_CLK_TCK")
    split["serve"] = round((after.serve - before.serve) / tck / wall, 2)
    split["workers"] = round((after.workers - before.workers) / tck / wall, 2)
    split["emulator"] = round((after.emulator - before.emulator) / tck / wall, 2)
    return split


def wait_calm(cfg: Config) -> dict[str, Any]:
    """Before a measured run: wait for a calm machine (see bench.common.wait_calm)."""
    return _wait_calm(cfg.max_load, cfg.calm_wait, pause=1)


# ---------------------------------------------------------------------------- ops API


def admin(setup: Setup, token: str) -> httpx.Client:
    """A client of the ops API."""
    return httpx.Client(
        base_url=setup.base,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        trust_env=False,
    )


def closed_hours() -> dict[str, Any]:
    """Business hours that are closed now: one minute, three days from today (UTC)."""
    day = DAYS[(datetime.now(UTC).weekday() + 3) % 7]
    return {"timezone": "UTC", "weekly": {day: [["03:00", "03:01"]]}}


def create_pool(cfg: Config, setup: Setup, token: str, name: str, *, closed: bool) -> int:
    """A pool whose callbacks ring `cfg.agents` agents (and, if `closed`, wait for it to open)."""
    with admin(setup, token) as client:
        body = {"name": name, "destination": DESTINATION, "fallback_number": FALLBACK}
        created = client.post("/v1/pools", json=body)
        if created.status_code != 201:
            raise RuntimeError(f"POST /v1/pools: {created.status_code} {created.text}")
        changes: dict[str, Any] = {"agents": AGENTS[: cfg.agents]}
        if closed:
            changes["business_hours"] = closed_hours()
        patched = client.patch(f"/v1/pools/{name}", json=changes)
        if patched.status_code != 200:
            raise RuntimeError(f"PATCH /v1/pools: {patched.status_code} {patched.text}")
    return int(psql(cfg, f"SELECT id FROM pool WHERE name = '{name}'", database=cfg.database))


def open_pool(setup: Setup, token: str, name: str) -> None:
    """Business hours off: always open."""
    with admin(setup, token) as client:
        patched = client.patch(f"/v1/pools/{name}", json={"business_hours": None})
        if patched.status_code != 200:
            raise RuntimeError(f"PATCH /v1/pools: {patched.status_code} {patched.text}")


# ---------------------------------------------------------------------------- load


def _pct(ordered: Sequence[float], p: float) -> float:
    """The p-th percentile of sorted values (nearest rank, as the other harnesses)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def _stats_ms(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max of seconds, in ms."""
    ordered = sorted(values)
    out = {f"p{p}": round(_pct(ordered, p) * 1000, 1) for p in (50, 90, 99)}
    out["max"] = round(ordered[-1] * 1000, 1) if ordered else 0.0
    out["min"] = round(ordered[0] * 1000, 1) if ordered else 0.0
    out["n"] = len(ordered)
    return out


async def _post_callback(
    client: httpx.AsyncClient, pool: str, phone: str
) -> tuple[int, str | None, str | None, float, float]:
    """POST /callback: (status, callback id, state, sent, returned), wall-clock seconds."""
    sent = time.time()
    try:
        answer = await client.post("/callback", json={"pool": pool, "phone": phone})
    except httpx.HTTPError as exc:
        return -1, None, type(exc).__name__, sent, time.time()
    returned = time.time()
    if answer.status_code != 200:
        return answer.status_code, None, answer.text[:200], sent, returned
    body = answer.json()
    return 200, str(body["callback_id"]), str(body["state"]), sent, returned


def _client(base: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base,
        timeout=30,
        trust_env=False,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def enqueue(base: str, pool: str, phones: Sequence[str], clients: int) -> dict[str, Any]:
    """Queue one request per phone with `clients` concurrent keep-alive connections."""
    queue = list(phones)
    results: list[tuple[int, str | None, str | None, float, float]] = []
    async with _client(base, clients) as client:

        async def one_client() -> None:
            while queue:
                results.append(await _post_callback(client, pool, queue.pop()))

        begun = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(one_client() for _ in range(clients))), 300)
        elapsed = time.monotonic() - begun
    statuses: dict[str, int] = {}
    states: dict[str, int] = {}
    for status, _, state, _, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 200 and state:
            states[state] = states.get(state, 0) + 1
    ok = statuses.get("200", 0)
    return {
        "requests": len(results),
        "ok": ok,
        "statuses": statuses,
        "states": states,
        "errors": [s for st, _, s, _, _ in results if st != 200][:5],
        "elapsed_s": round(elapsed, 3),
        "per_s": round(ok / elapsed, 1) if elapsed else 0.0,
        "latency_ms": _stats_ms([r - s for _, _, _, s, r in results]),
    }


async def _count(conn: Any, pool_id: int) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM callback_request WHERE pool_id = $1 GROUP BY status",
        pool_id,
    )
    return {row["status"]: int(row["n"]) for row in rows}


async def wait_done(cfg: Config, pool_id: int, expected: int) -> dict[str, Any]:
    """Poll (every 0.2 s) until `expected` requests of the pool have ended, no request has
    changed state for --stall-timeout s, or --drain-timeout s pass."""
    conn = await asyncpg.connect(dsn(cfg))
    try:
        begun = time.monotonic()
        last_progress = begun
        last_counts: dict[str, int] = {}
        while True:
            counts = await _count(conn, pool_id)
            ended = sum(v for k, v in counts.items() if k in FINAL)
            now = time.monotonic()
            if counts != last_counts:  # requests moving on (calling_customer, completed)
                last_counts, last_progress = counts, now
            if ended >= expected:
                reason = "done"
            elif now - last_progress >= cfg.stall_timeout:
                reason = "stalled"
            elif now - begun >= cfg.drain_timeout:
                reason = "timeout"
            else:
                await asyncio.sleep(0.2)
                continue
            return {"reason": reason, "waited_s": round(now - begun, 2), "counts": counts}
    finally:
        await conn.close()


ROWS_SQL = """
SELECT r.id, r.status, r.attempts, r.last_error,
       extract(epoch FROM r.created_at)::float8 AS created,
       extract(epoch FROM r.ended_at)::float8 AS ended,
       extract(epoch FROM a.created_at)::float8 AS attempt_created,
       a.provider_call_id, a.status AS attempt_status,
       (SELECT count(*) FROM callback_attempt x WHERE x.request_id = r.id) AS attempts_made
FROM callback_request r
LEFT JOIN LATERAL (
    SELECT * FROM callback_attempt WHERE request_id = r.id ORDER BY id LIMIT 1
) a ON true
WHERE r.pool_id = $1
"""


async def fetch_rows(cfg: Config, pool_id: int) -> list[dict[str, Any]]:
    """Every request of the pool with its first attempt; times as epoch seconds."""
    conn = await asyncpg.connect(dsn(cfg))
    try:
        return [dict(row) for row in await conn.fetch(ROWS_SQL, pool_id)]
    finally:
        await conn.close()


def abandon(cfg: Config, pool_id: int) -> int:
    """End the pool's requests still pending (stuck ones), so the next run starts clean."""
    out = psql(
        cfg,
        "WITH gone AS (UPDATE callback_request SET status = 'cancelled', ended_at = now(),"
        f" next_attempt_at = now() WHERE pool_id = {pool_id} AND status IN {ACTIVE_SQL}"
        " RETURNING 1) SELECT count(*) FROM gone",
        database=cfg.database,
    )
    return int(out or 0)


async def emulator_calls(base: str, tokens: set[str]) -> dict[str, Any]:
    """What the emulator noted about the run's calls: errors (webhooks it could not deliver,
    or that the service refused), hangup causes, and calls it no longer remembers."""
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as client:
            answer = await client.get("/emulator/calls")
        answer.raise_for_status()
    except httpx.HTTPError as exc:  # an overloaded serve process may not answer in time
        return {"unavailable": f"{type(exc).__name__}: {exc}"[:200], "with_errors": 0}
    calls = [c for c in answer.json() if c["token"] in tokens]
    errors: dict[str, int] = {}
    hangups: dict[str, int] = {}
    for call in calls:
        hangups[str(call["hangup"])] = hangups.get(str(call["hangup"]), 0) + 1
        for error in call["errors"]:
            key = re.sub(r"https?://\S+?/(webhooks|emulator)", r"\1", str(error))
            key = re.sub(r"\d+", "N", key)[:160]
            errors[key] = errors.get(key, 0) + 1
    return {
        "known": len(calls),
        "forgotten": len(tokens) - len(calls),
        "active": sum(1 for c in calls if c["state"] != "ended"),
        "with_errors": sum(1 for c in calls if c["errors"]),
        "errors": errors,
        "hangups": hangups,
        "session_updates_sent": sum(int(c["session_updates_sent"]) for c in calls),
    }


def peak_in_progress(rows: Sequence[dict[str, Any]], until: float) -> int:
    """The most callbacks between their first attempt and their end at any one time."""
    events: list[tuple[float, int]] = []
    for row in rows:
        if row["attempt_created"] is None:
            continue
        events.append((row["attempt_created"], 1))
        events.append((row["ended"] or until, -1))
    peak = current = 0
    for _, step in sorted(events):
        current += step
        peak = max(peak, current)
    return peak


def _summary_of(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        if row["last_error"]:
            key = re.sub(r"\d+", "N", str(row["last_error"]))[:120]
            errors[key] = errors.get(key, 0) + 1
    return {
        "statuses": statuses,
        "last_errors": errors,
        "attempts_made": {
            str(n): sum(1 for r in rows if r["attempts_made"] == n)
            for n in sorted({int(r["attempts_made"]) for r in rows})
        },
    }


# ---------------------------------------------------------------------------- throughput


@dataclass
class ThroughputRun:
    """One queue of K requests drained by one configuration."""

    config: str
    rep: int
    requests: int
    enqueue: dict[str, Any]
    completed: int
    per_s: float  # first attempt to last completion
    per_s_mid: float  # the middle 80% of the completions
    originated_per_s: float  # first attempt to last attempt: the queue drained into calls
    originate_s: float
    first_completion_s: float  # first attempt to first completion
    peak_in_progress: int
    release_to_first_attempt_s: float
    drain_s: float
    waited: dict[str, Any]
    cpu: dict[str, float]
    cpu_window_s: float  # from the release until all had ended
    calm: dict[str, Any]
    outcome: dict[str, Any]
    emulator: dict[str, Any]
    abandoned: int
    # Seconds from the first attempt: each attempt's start, each completion.
    attempt_offsets: list[float] = field(default_factory=list)
    completion_offsets: list[float] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    access: dict[str, Any] = field(default_factory=dict)
    app: str = ""  # the code the processes ran (app_state())
    workers_started: list[float] = field(default_factory=list)
    # CPU milliseconds each party spent per completed callback (the whole window).
    cpu_ms_per_callback: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.completed > 0:
            self.cpu_ms_per_callback = {
                k: round(self.cpu[k] * self.cpu_window_s / self.completed * 1000, 1)
                for k in ("serve", "workers", "emulator", "postgres")
            }


def throughput_run(
    cfg: Config, setup: Setup, token: str, phones: Sequence[str], *, rep: int, name: str
) -> ThroughputRun:
    """Park K requests in a closed pool, open it, make them due at once, time the drain."""
    pool_id = create_pool(cfg, setup, token, name, closed=True)
    calm = wait_calm(cfg)
    enq = asyncio.run(enqueue(setup.base, name, phones, cfg.clients))
    _log(
        f"{setup.layout.name} rep {rep}: queued {enq['ok']}/{len(phones)} at {enq['per_s']}/s "
        f"(statuses {enq['statuses']}, states {enq['states']})"
    )
    open_pool(setup, token, name)
    before = cpu_now(setup)
    released = time.time()
    # The service parked them as `scheduled` for the next opening: all due now, as if the
    # pool had just opened with K requests waiting.
    psql(
        cfg,
        "UPDATE callback_request SET status = 'queued', next_attempt_at = now()"
        f" WHERE pool_id = {pool_id} AND status = 'scheduled'",
        database=cfg.database,
    )
    waited = asyncio.run(wait_done(cfg, pool_id, enq["ok"]))
    after = cpu_now(setup)
    ended_at = time.time()
    rows = asyncio.run(fetch_rows(cfg, pool_id))
    tokens = {r["provider_call_id"] for r in rows if r["provider_call_id"]}
    emulator = asyncio.run(emulator_calls(setup.emulator_base, tokens))
    abandoned = abandon(cfg, pool_id) if waited["reason"] != "done" else 0
    done = sorted(r["ended"] for r in rows if r["status"] == "completed" and r["ended"])
    firsts = sorted(r["attempt_created"] for r in rows if r["attempt_created"])
    first = firsts[0] if firsts else released
    originate = (firsts[-1] - first) if firsts else 0.0
    span = (done[-1] - first) if done else 0.0
    lo, hi = int(len(done) * 0.1), max(0, int(len(done) * 0.9) - 1)
    mid = (hi - lo) / (done[hi] - done[lo]) if done and done[hi] > done[lo] else 0.0
    run = ThroughputRun(
        config=setup.layout.name,
        rep=rep,
        requests=len(phones),
        enqueue=enq,
        completed=len(done),
        per_s=round(len(done) / span, 1) if span > 0 else 0.0,
        per_s_mid=round(mid, 1),
        originated_per_s=round(len(firsts) / originate, 1) if originate > 0 else 0.0,
        originate_s=round(originate, 2),
        first_completion_s=round(done[0] - first, 2) if done else 0.0,
        peak_in_progress=peak_in_progress(rows, ended_at),
        release_to_first_attempt_s=round(first - released, 3),
        drain_s=round(span, 2),
        waited=waited,
        cpu=cpu_between(before, after),
        cpu_window_s=round(after.machine.at - before.machine.at, 3),
        calm=calm,
        outcome=_summary_of(rows),
        emulator=emulator,
        abandoned=abandoned,
        attempt_offsets=[round(t - first, 3) for t in firsts],
        completion_offsets=[round(t - first, 3) for t in done],
    )
    _log(
        f"{setup.layout.name} rep {rep}: {run.originated_per_s}/s originated, "
        f"peak {run.peak_in_progress} in progress, first completion after "
        f"{run.first_completion_s} s; emulator: {emulator.get('with_errors')} calls with errors "
        f"{emulator.get('errors', emulator.get('unavailable'))}, {emulator.get('active')} active"
    )
    _log(
        f"{setup.layout.name} rep {rep}: {run.completed} completed, {run.per_s}/s "
        f"(middle 80%: {run.per_s_mid}/s), first attempt {run.release_to_first_attempt_s} s "
        f"after release, {waited['reason']}; cpu {run.cpu}"
    )
    return run


# ---------------------------------------------------------------------------- latency


@dataclass
class LatencyRun:
    """Open-loop arrivals at a fixed mean rate through one configuration."""

    config: str
    rep: int
    rate: float
    seconds: float
    sent: int
    ok: int
    statuses: dict[str, int]
    completed: int
    post_ms: dict[str, float]  # POST /callback itself
    to_attempt_ms: dict[str, float]  # POST returned -> callback_attempt.created_at
    to_ring_ms: dict[str, float]  # POST returned -> the emulator's callStartTime
    to_done_ms: dict[str, float]  # POST returned -> callback_request.ended_at (completed)
    generator_lateness_ms: dict[str, float]
    waited: dict[str, Any]
    cpu: dict[str, float]
    calm: dict[str, Any]
    outcome: dict[str, Any]
    abandoned: int
    missing_sessions: int
    emulator: dict[str, Any]
    log_problems: list[str] = field(default_factory=list)
    access: dict[str, Any] = field(default_factory=dict)
    app: str = ""
    workers_started: list[float] = field(default_factory=list)
    samples: list[tuple[float, float, float]] = field(default_factory=list)


async def open_loop(
    base: str, pool: str, phones: Sequence[str], *, rate: float, seconds: float, seed: int
) -> dict[str, Any]:
    """Poisson arrivals at `rate` per second for `seconds` (one phone each, at most
    len(phones)); at most 64 requests in flight."""
    rng = random.Random(seed)
    arrivals: list[float] = []
    at = 0.0
    while len(arrivals) < len(phones):
        at += rng.expovariate(rate)
        if at >= seconds:
            break
        arrivals.append(at)
    results: list[tuple[int, str | None, str | None, float, float]] = []
    lateness: list[float] = []
    loop = asyncio.get_running_loop()
    async with _client(base, 64) as client:

        async def one(index: int, scheduled: float) -> None:
            lateness.append(loop.time() - scheduled)
            results.append(await _post_callback(client, pool, phones[index]))

        tasks = []
        start = loop.time() + 0.1
        for index, offset in enumerate(arrivals):
            delay = start + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, start + offset)))
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        elapsed = loop.time() - start
    return {"results": results, "lateness": lateness, "elapsed_s": elapsed}


async def ring_times(base: str, key: str, tokens: Sequence[str]) -> dict[str, float]:
    """callStartTime (epoch seconds) of each emulated call, from the emulated REST API."""
    found: dict[str, float] = {}
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30, trust_env=False
    ) as client:

        async def one(token: str) -> None:
            async with gate:
                try:
                    answer = await client.get(f"/emulator/calls/{DOMAIN}/sessions/{token}")
                except httpx.HTTPError:
                    return
            if answer.status_code == 200:
                found[token] = answer.json()["callStartTime"] / 1000

        await asyncio.gather(*(one(t) for t in tokens))
    return found


def latency_run(
    cfg: Config,
    setup: Setup,
    token: str,
    key: str,
    phones: Sequence[str],
    *,
    rep: int,
    name: str,
) -> LatencyRun:
    """Requests at --rate for --open-duration s; delays from each POST's answer."""
    pool_id = create_pool(cfg, setup, token, name, closed=False)
    calm = wait_calm(cfg)
    before = cpu_now(setup)
    data = asyncio.run(
        open_loop(
            setup.base,
            name,
            phones,
            rate=cfg.rate,
            seconds=cfg.open_duration,
            seed=cfg.seed + rep * 1000 + setup.layout.processes,
        )
    )
    results = data["results"]
    ok = [r for r in results if r[0] == 200]
    waited = asyncio.run(wait_done(cfg, pool_id, len(ok)))
    after = cpu_now(setup)
    rows = {r["id"]: r for r in asyncio.run(fetch_rows(cfg, pool_id))}
    abandoned = abandon(cfg, pool_id) if waited["reason"] != "done" else 0
    tokens = [r["provider_call_id"] for r in rows.values() if r["provider_call_id"]]
    rings = asyncio.run(ring_times(setup.emulator_base, key, tokens))
    emulator = asyncio.run(emulator_calls(setup.emulator_base, set(tokens)))
    to_attempt, to_ring, to_done, samples = [], [], [], []
    for _, callback_id, _, _, returned in ok:
        row = rows.get(str(callback_id))
        if row is None:
            continue
        if row["attempt_created"] is not None:
            to_attempt.append(row["attempt_created"] - returned)
        ring = rings.get(row["provider_call_id"] or "")
        if ring is not None:
            to_ring.append(ring - returned)
            samples.append(
                (
                    round(returned, 3),
                    round(row["attempt_created"] - returned, 4),
                    round(ring - returned, 4),
                )
            )
        if row["status"] == "completed" and row["ended"] is not None:
            to_done.append(row["ended"] - returned)
    statuses: dict[str, int] = {}
    for status, *_ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    run = LatencyRun(
        config=setup.layout.name,
        rep=rep,
        rate=cfg.rate,
        seconds=round(data["elapsed_s"], 2),
        sent=len(results),
        ok=len(ok),
        statuses=statuses,
        completed=sum(1 for r in rows.values() if r["status"] == "completed"),
        post_ms=_stats_ms([r[4] - r[3] for r in results]),
        to_attempt_ms=_stats_ms(to_attempt),
        to_ring_ms=_stats_ms(to_ring),
        to_done_ms=_stats_ms(to_done),
        generator_lateness_ms=_stats_ms(data["lateness"]),
        waited=waited,
        cpu=cpu_between(before, after),
        calm=calm,
        outcome=_summary_of(list(rows.values())),
        abandoned=abandoned,
        missing_sessions=len(tokens) - len(rings),
        emulator=emulator,
        samples=samples,
    )
    _log(
        f"{setup.layout.name} rep {rep}: {run.ok}/{run.sent} queued at {cfg.rate}/s, "
        f"{run.completed} completed; to attempt p50 {run.to_attempt_ms['p50']} "
        f"p99 {run.to_attempt_ms['p99']} ms; to ring p50 {run.to_ring_ms['p50']} "
        f"p99 {run.to_ring_ms['p99']} ms"
    )
    return run


# ---------------------------------------------------------------------------- summary


def _spread(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def summarise(result: dict[str, Any]) -> str:
    """Markdown tables of the medians over the repetitions."""
    meta = result["meta"]
    lines = [
        f"Callback queue benchmark, {meta['started']} ({meta['git']}), {meta['cores']} cores, "
        f"PostgreSQL {meta['postgres']}; emulator {meta['emulator']}, speed {meta['speed']:g}, "
        f"poll {meta['poll']:g} s{' (workers staggered)' if meta['stagger'] else ''}, "
        f"{meta['requests']} requests per throughput run, {meta['repeat']} repetitions",
        "",
    ]
    codes = sorted({r.get("app", "") for r in result["throughput"] + result["latency"]})
    lines += [f"App code of the runs: {', '.join(codes)}", ""]
    runs = result["throughput"]
    if runs:
        lines += [
            "| config | queued/s | POST p50/p99 ms | originated/s | first completion s "
            "| completions/s | the runs | middle 80% | cores serve/workers/emul/pg/other "
            "| CPU ms/callback serve/workers/emul | not completed | emulator errors "
            "| log problems |",
            "|---|---:|---|---:|---:|---:|---|---:|---|---|---:|---:|---:|",
        ]
        for name in meta["configs"]:
            group = [r for r in runs if r["config"] == name]
            if not group:
                continue

            def med(key: str, group: list[dict[str, Any]] = group) -> float:
                return _median([r["cpu"][key] for r in group])

            def per(key: str, group: list[dict[str, Any]] = group) -> float:
                return _median([r["cpu_ms_per_callback"].get(key, 0.0) for r in group])

            lines.append(
                f"| {name} | {_median([r['enqueue']['per_s'] for r in group]):.0f} "
                f"| {_median([r['enqueue']['latency_ms']['p50'] for r in group]):.0f}/"
                f"{_median([r['enqueue']['latency_ms']['p99'] for r in group]):.0f} "
                f"| {_median([r['originated_per_s'] for r in group]):.1f} "
                f"| {_median([r['first_completion_s'] for r in group]):.1f} "
                f"| **{_median([r['per_s'] for r in group]):.1f}** "
                f"| {_spread([r['per_s'] for r in group])} "
                f"| {_median([r['per_s_mid'] for r in group]):.1f} "
                f"| {med('serve'):.2f}/{med('workers'):.2f}/{med('emulator'):.2f}/"
                f"{med('postgres'):.2f}/{med('other'):.2f} "
                f"| {per('serve'):.0f}/{per('workers'):.0f}/{per('emulator'):.0f} "
                f"| {sum(r['requests'] - r['completed'] for r in group)} "
                f"| {sum(int(r['emulator'].get('with_errors', 0)) for r in group)} "
                f"| {sum(len(r['log_problems']) for r in group)} |"
            )
        lines.append("")
    runs = result["latency"]
    if runs:
        lines += [
            "| config | rate/s | requests | POST->attempt p50/p99 ms | POST->ring p50/p90/p99 ms "
            "| the runs' ring p99 | POST->completed p50 ms | POST p50/p99 ms | not completed |",
            "|---|---:|---:|---|---|---|---:|---|---:|",
        ]
        for name in meta["configs"]:
            group = [r for r in runs if r["config"] == name]
            if not group:
                continue
            pooled = sorted(s[2] for r in group for s in r["samples"])
            pooled_attempt = sorted(s[1] for r in group for s in r["samples"])
            lines.append(
                f"| {name} | {group[0]['rate']:g} | {sum(r['ok'] for r in group)} "
                f"| {_median([r['to_attempt_ms']['p50'] for r in group]):.0f}/"
                f"{_median([r['to_attempt_ms']['p99'] for r in group]):.0f} "
                f"| **{_median([r['to_ring_ms']['p50'] for r in group]):.0f}**/"
                f"{_median([r['to_ring_ms']['p90'] for r in group]):.0f}/"
                f"**{_median([r['to_ring_ms']['p99'] for r in group]):.0f}** "
                f"| {_spread([r['to_ring_ms']['p99'] for r in group], '{:.0f}')} "
                f"| {_median([r['to_done_ms']['p50'] for r in group]):.0f} "
                f"| {_median([r['post_ms']['p50'] for r in group]):.1f}/"
                f"{_median([r['post_ms']['p99'] for r in group]):.1f} "
                f"| {sum(r['ok'] - r['completed'] for r in group)} |"
            )
            if pooled:
                lines.append(
                    f"|  (pooled {len(pooled)}) | | | "
                    f"{_pct(pooled_attempt, 50) * 1000:.0f}/"
                    f"{_pct(pooled_attempt, 99) * 1000:.0f} "
                    f"| {_pct(pooled, 50) * 1000:.0f}/"
                    f"{_pct(pooled, 90) * 1000:.0f}/"
                    f"{_pct(pooled, 99) * 1000:.0f} | | | | |"
                )
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main

PHASES = ("throughput", "latency")


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.callback_bench", description=__doc__)
    arg = parser.add_argument
    arg(
        "--configs",
        default="inproc,1,4",
        help="where the worker runs: inproc (in calltrack serve) or N worker processes; "
        "'NxC' or 'inprocxC' sets each worker's concurrency to C",
    )
    arg("--requests", type=int, default=100, help="requests queued per throughput run")
    arg("--clients", type=int, default=8, help="concurrent connections that queue them")
    arg("--repeat", type=int, default=3, help="repetitions of every configuration")
    arg("--rate", type=float, default=5.0, help="latency: mean requests per second (Poisson)")
    arg("--open-duration", type=int, default=20, help="latency: seconds of arrivals per run")
    arg("--phases", default=",".join(PHASES), help=f"which of {','.join(PHASES)} to run")
    arg("--poll", type=float, default=1.0, help="CALLTRACK_CALLBACK_POLL_SECONDS")
    arg("--concurrency", type=int, default=4, help="CALLTRACK_CALLBACK_CONCURRENCY per worker")
    arg("--speed", type=float, default=1000.0, help="CALLTRACK_EMULATOR_SPEED")
    arg("--db-pool-size", type=int, default=0, help="CALLTRACK_DB_POOL_SIZE; 0: the default")
    arg(
        "--emulator",
        choices=["inline", "separate"],
        default="inline",
        help="inline: the emulator mounted in calltrack serve (what the README describes); "
        "separate: `calltrack emulator` in its own process, reached as Cloudonix",
    )
    arg("--access-log", action="store_true", help="serve at INFO: per-route durations")
    arg(
        "--stagger",
        action="store_true",
        help="start worker processes poll/N seconds apart instead of all at once",
    )
    arg("--drain-timeout", type=int, default=180, help="longest wait for a run's completions")
    arg("--stall-timeout", type=int, default=20, help="give up after this long without one")
    arg("--max-load", type=float, default=1.5, help="wait for this 1-minute load before runs")
    arg("--calm-wait", type=int, default=30, help="the longest wait for calm, seconds")
    arg("--base-port", type=int, default=18400)
    arg("--pg-host", default="127.0.0.1")
    arg("--pg-port", type=int, default=5432)
    arg("--pg-user", default="postgres")
    arg("--database", default="calltrack_callback_bench")
    arg("--keep-db", action="store_true", help="do not drop the database at the end")
    arg("--results-dir", type=Path, default=BENCH_DIR / "results")
    arg("--seed", type=int, default=20261126)
    arg(
        "--agents",
        type=int,
        default=20,
        choices=range(1, 21),
        metavar="1-20",
        help="agents in the pool (each takes one callback call at a time)",
    )
    ns = parser.parse_args(argv)
    if ns.pg_host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("the benchmark only targets this machine")
    ns.configs = [c.strip() for c in ns.configs.split(",") if c.strip()]
    try:
        for spec in ns.configs:
            Layout.parse(spec, ns.concurrency)
    except ValueError as exc:
        parser.error(str(exc))
    ns.phases = [p for p in ns.phases.split(",") if p]
    if unknown := set(ns.phases) - set(PHASES):
        parser.error(f"unknown phases: {sorted(unknown)}")
    if not 1 <= ns.requests <= 5000 or ns.repeat < 1 or not 0 < ns.rate <= 50:
        parser.error("1-5000 requests, a positive repeat and a rate of at most 50/s")
    if not 1 <= ns.open_duration <= 120 or not 1 <= ns.clients <= 64:
        parser.error("--open-duration 1-120 s, --clients 1-64")
    return Config(**vars(ns))


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO)
    return done.stdout.strip()


def app_state() -> str:
    """The commit and a digest of uncommitted changes under app/ when processes start (other
    people edit the tree while the benchmark runs): 'abc1234' or 'abc1234+<digest>'."""
    diff = _git("diff", "HEAD", "--", "app", "migrations")
    rev = _git("rev-parse", "--short", "HEAD")
    digest = hashlib.sha1(diff.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{rev}+{digest}" if diff else rev


def main(argv: Sequence[str] | None = None) -> int:
    """Create the database, run every configuration, write the JSON and a Markdown summary."""
    cfg = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    if shutil.which("psql") is None:
        raise SystemExit("psql is required (Debian: apt-get install postgresql-client)")
    started = datetime.now(UTC)
    admin_token = "adm_" + secrets.token_urlsafe(24)
    emulator_key = "XI" + secrets.token_hex(16)  # Cloudonix keys: 34 characters, "XI" first
    secrets_env = {
        "CALLTRACK_ADMIN_TOKEN": admin_token,
        "CALLTRACK_EMULATOR_API_KEY": emulator_key,
        "CALLTRACK_WEBHOOK_TOKEN": "whk_" + secrets.token_urlsafe(24),
    }
    layouts = [Layout.parse(spec, cfg.concurrency) for spec in cfg.configs]
    per_latency_run = int(cfg.rate * cfg.open_duration * 2) + 20
    need = 0
    if "throughput" in cfg.phases:
        need += len(layouts) * cfg.repeat * cfg.requests
    if "latency" in cfg.phases:
        need += len(layouts) * cfg.repeat * per_latency_run
    phones = iter(customer_numbers(need))
    meta = {k: v for k, v in asdict(cfg).items() if k != "results_dir"}
    meta.update(
        started=started.isoformat(timespec="seconds"),
        cores=os.cpu_count(),
        postgres=psql(cfg, "SHOW server_version"),
        git=_git("rev-parse", "--short", "HEAD"),
        app_changes=_git("status", "--porcelain", "app", "migrations"),
        load_start=[round(v, 2) for v in os.getloadavg()],
        layouts={layout.name: layout.label for layout in layouts},
    )
    result: dict[str, Any] = {"meta": meta, "throughput": [], "latency": []}
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    out = cfg.results_dir / f"callback-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    runs = 0
    try:
        prepare_database(cfg, secrets_env)
        # Repetitions outside, configurations inside: a neighbour's load on the shared
        # machine then falls on every configuration alike. Fresh processes for each.
        for rep in range(1, cfg.repeat + 1):
            for layout in layouts:
                code = app_state()
                with run_setup(cfg, layout, secrets_env) as setup:
                    seen = access_seen = 0
                    if "throughput" in cfg.phases:
                        runs += 1
                        batch = [next(phones) for _ in range(cfg.requests)]
                        run = throughput_run(
                            cfg, setup, admin_token, batch, rep=rep, name=f"tp{runs}"
                        )
                        problems = log_problems(setup)
                        run.log_problems, seen = problems[seen:], len(problems)
                        run.app, run.workers_started = code, setup.workers_started
                        if cfg.access_log:
                            run.access, access_seen = access_summary(setup, access_seen)
                        result["throughput"].append(asdict(run))
                        out.write_text(json.dumps(result, indent=1, default=str))
                        if run.abandoned:  # calls may still be playing: start afresh
                            continue
                    if "latency" in cfg.phases:
                        runs += 1
                        batch = [next(phones) for _ in range(per_latency_run)]
                        lat = latency_run(
                            cfg, setup, admin_token, emulator_key, batch, rep=rep, name=f"lat{runs}"
                        )
                        problems = log_problems(setup)
                        lat.log_problems, seen = problems[seen:], len(problems)
                        lat.app, lat.workers_started = code, setup.workers_started
                        if cfg.access_log:
                            lat.access, access_seen = access_summary(setup, access_seen)
                        result["latency"].append(asdict(lat))
                        out.write_text(json.dumps(result, indent=1, default=str))
    finally:
        meta["load_end"] = [round(v, 2) for v in os.getloadavg()]
        meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        meta["app_changes_end"] = _git("status", "--porcelain", "app", "migrations")
        out.write_text(json.dumps(result, indent=1, default=str))
        if not cfg.keep_db:
            with contextlib.suppress(subprocess.SubprocessError):
                psql(cfg, f'DROP DATABASE IF EXISTS "{cfg.database}" WITH (FORCE)')
                _log(f"dropped {cfg.database}")
        _log(f"results: {out}")
    print(summarise(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
