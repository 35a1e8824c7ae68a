"""Lease throughput benchmark: POST /get_tracking_number over HTTP vs the claim in pgbench.

For each pool size: a fresh PostgreSQL database, migrated and seeded through the service's
own code, the pool's lease TTL and cooldown set to 0 (numbers recycle at once), N
`calltrack serve` processes, then at each client count a warm-up and a measured run of
`wrk` (closed-loop clients, bounded in time and count, 127.0.0.1 only) and of `pgbench`
running the service's claim statement, the ceiling. Optional soak: one long run at 32
clients on a large pool, reporting leases/s per 10 s and the table's dead tuples.

    python -m bench.lease_bench [--pools 100,10000,100000] [--clients 1,8,32,64]
        [--duration 20] [--servers 2] [--repeat 3] [--soak 300]

Results: JSON under bench/results/ and a Markdown summary on stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import text

from app.db.repositories import leases as leases_repo
from app.db.repositories.leases import _PG_CLAIM
from app.db.session import make_engine, make_sessionmaker
from app.services import pools as pool_service
from bench.common import log as _log
from bench.common import machine_ticks as _machine_ticks
from bench.common import median as _median
from bench.common import psql as _psql
from bench.common import sqlalchemy_url as _sqlalchemy_url
from bench.common import terminate as _terminate
from bench.common import wrk_json as _wrk_json

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LUA = BENCH_DIR / "lease.lua"
POOL = "bench"
HOST = "127.0.0.1"  # every load targets this machine only
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Bounds on top of the durations: requests per wrk thread, seconds past the run's length.
MAX_RATE_PER_THREAD = 50_000
GRACE_SECONDS = 60


@dataclass(frozen=True)
class Config:
    """What the command line asked for."""

    pools: list[int]
    clients: list[int]
    duration: int
    warmup: int
    repeat: int
    servers: int
    mode: str
    db_pool_size: int
    soak: int
    soak_clients: int
    soak_pool: int
    pgbench: bool
    http: bool
    base_port: int
    pg_host: str
    pg_port: int
    pg_user: str
    database: str
    results_dir: Path
    wrk_threads: int
    variant: str
    profile_clients: int
    quiet_wait: int
    vacuum: bool
    soak_vacuum: int


# ---------------------------------------------------------------------------- PostgreSQL


def psql(cfg: Config, sql: str, *, database: str = "postgres") -> str:
    """Run SQL with psql and return its unaligned output."""
    return _psql(cfg, sql, database=database, timeout=600)


def sqlalchemy_url(cfg: Config) -> str:
    """The service's database URL for the bench database."""
    return _sqlalchemy_url(cfg)


def us_numbers(count: int) -> list[str]:
    """`count` distinct valid US numbers in E.164: +1 NPA 200..999 XXXX, NPAs from 201."""
    found: list[str] = []
    for npa in range(201, 1000):
        for nxx in range(200, 1000):
            probe = phonenumbers.parse(f"+1{npa}{nxx}0000")
            if not phonenumbers.is_valid_number(probe):
                continue
            for line in range(10_000):
                e164 = f"+1{npa}{nxx}{line:04d}"
                if phonenumbers.is_valid_number(phonenumbers.parse(e164)):
                    found.append(e164)
                    if len(found) == count:
                        return found
            break  # one exchange per area code spreads the numbers over area codes
    raise ValueError(f"could not make {count} valid US numbers")


async def _seed(url: str, numbers: Sequence[str]) -> None:
    # The service's own code paths: pools.create and pools.add_numbers (validation included).
    engine = make_engine(url)
    try:
        sessionmaker = make_sessionmaker(engine)
        now = datetime.now(UTC)
        async with sessionmaker() as db:
            await pool_service.create(
                db,
                name=POOL,
                destination="+12125550100",
                fallback_number="+12125550199",
                lease_ttl_seconds=1,  # the API's minimum; set to 0 below
                cooldown_seconds=0,
                region="US",
                now=now,
            )
            await db.commit()
        for start in range(0, len(numbers), 10_000):
            async with sessionmaker() as db:
                await pool_service.add_numbers(
                    db, name=POOL, raw_numbers=numbers[start : start + 10_000], region="US", now=now
                )
                await db.commit()
        async with engine.begin() as conn:
            # Below the API's minimum on purpose: numbers must recycle thousands of times a
            # second. Servers started later read the pool fresh (their cache is per process).
            await conn.execute(
                text("UPDATE pool SET lease_ttl_seconds = 0, cooldown_seconds = 0 WHERE name = :n"),
                {"n": POOL},
            )
    finally:
        await engine.dispose()


def prepare_database(cfg: Config, size: int) -> int:
    """Drop and recreate the bench database, migrate it, seed `size` numbers; the pool id."""
    psql(cfg, f'DROP DATABASE IF EXISTS "{cfg.database}" WITH (FORCE)')
    psql(cfg, f'CREATE DATABASE "{cfg.database}"')
    env = server_env(cfg, admin_token="")
    subprocess.run([str(calltrack_bin()), "migrate"], check=True, env=env, cwd=REPO, timeout=300)
    asyncio.run(_seed(sqlalchemy_url(cfg), us_numbers(size)))
    psql(cfg, "VACUUM ANALYZE", database=cfg.database)
    return int(psql(cfg, f"SELECT id FROM pool WHERE name = '{POOL}'", database=cfg.database))


TABLE_STATS_SQL = """
SELECT json_build_object(
  'n_live_tup', s.n_live_tup, 'n_dead_tup', s.n_dead_tup,
  'n_tup_upd', s.n_tup_upd, 'n_tup_hot_upd', s.n_tup_hot_upd,
  'autovacuum_count', s.autovacuum_count, 'autoanalyze_count', s.autoanalyze_count,
  'last_autovacuum', s.last_autovacuum, 'vacuum_count', s.vacuum_count,
  'autovacuum_on', current_setting('autovacuum'),
  'table_bytes', pg_relation_size('tracking_number'),
  'claim_index_bytes', pg_relation_size('ix_tracking_number_claim'),
  'pkey_index_bytes', pg_relation_size('pk_tracking_number'),
  'e164_index_bytes', pg_relation_size('uq_tracking_number_e164'),
  'leases', pg_sequence_last_value(pg_get_serial_sequence('lease', 'id')),
  'lease_table_bytes', pg_total_relation_size('lease'),
  'sessions_bytes', pg_total_relation_size('visitor_session'),
  'fallback_events', (SELECT count(*) FROM fallback_event))
FROM pg_stat_user_tables s WHERE s.relname = 'tracking_number'
"""


def table_stats(cfg: Config) -> dict[str, Any]:
    """Dead tuples, vacuum counts and sizes of tracking_number and its claim index."""
    stats: dict[str, Any] = json.loads(psql(cfg, TABLE_STATS_SQL, database=cfg.database))
    stats["leases"] = stats["leases"] or 0
    return stats


def vacuum(cfg: Config) -> None:
    """VACUUM the table every lease rewrites, standing in for autovacuum (see README)."""
    if cfg.vacuum:
        psql(cfg, "VACUUM (ANALYZE) tracking_number", database=cfg.database)


def lease_count(cfg: Config) -> int:
    """Leases ever inserted (the lease id sequence; no lease insert is rolled back here)."""
    value = psql(
        cfg,
        "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('lease', 'id')), 0)",
        database=cfg.database,
    )
    return int(value)


def db_counters(cfg: Config) -> dict[str, int]:
    """Commits, rollbacks and connections opened in the bench database (pg_stat_database;
    backends report them when idle, so a run's figures may lag by a second or so)."""
    row = psql(
        cfg,
        "SELECT xact_commit, xact_rollback, sessions FROM pg_stat_database"
        f" WHERE datname = '{cfg.database}'",
    )
    commits, rollbacks, sessions = (int(v) for v in row.split("|"))
    return {"commits": commits, "rollbacks": rollbacks, "connections": sessions}


# ---------------------------------------------------------------------------- CPU from /proc


def _proc_stat(pid: int) -> tuple[str, int, int, int] | None:
    # (comm, ppid, utime+stime, cutime+cstime) of one process, in clock ticks.
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    return comm, int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def _all_procs() -> dict[int, tuple[str, int, int, int]]:
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                procs[int(entry)] = stat
    return procs


@dataclass
class CpuSnapshot:
    """Clock ticks used so far by each party of the benchmark."""

    at: float
    machine_busy: int
    machine_total: int
    servers: int
    postgres: int
    children: float  # seconds of reaped children of this process (the load generator)


def cpu_snapshot(server_pids: Sequence[int]) -> CpuSnapshot:
    """CPU used by the servers (process trees), PostgreSQL (all its processes, plus the
    backends that already exited, from the postmaster's cutime) and the generator."""
    procs = _all_procs()
    tree = set(server_pids)
    grew = True
    while grew:
        grew = False
        for pid, (_, ppid, _, _) in procs.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    servers = sum(procs[p][2] for p in tree if p in procs)
    postgres = 0
    for _pid, (comm, ppid, ticks, child_ticks) in procs.items():
        if comm != "postgres":
            continue
        postgres += ticks
        if procs.get(ppid, ("",))[0] != "postgres":  # the postmaster reaps the backends
            postgres += child_ticks
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy, total = _machine_ticks()
    return CpuSnapshot(
        at=time.monotonic(),
        machine_busy=busy,
        machine_total=total,
        servers=servers,
        postgres=postgres,
        children=usage.ru_utime + usage.ru_stime,
    )


def cpu_split(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """Cores used on average by each party between two snapshots (2.0 = both cores)."""
    wall = after.at - before.at
    cores = (after.machine_total - before.machine_total) / CLK_TCK / wall
    busy = (after.machine_busy - before.machine_busy) / CLK_TCK / wall
    servers = (after.servers - before.servers) / CLK_TCK / wall
    postgres = (after.postgres - before.postgres) / CLK_TCK / wall
    generator = (after.children - before.children) / wall
    return {
        "machine_cores": round(cores, 2),
        "busy": round(busy, 2),
        "servers": round(servers, 2),
        "postgres": round(postgres, 2),
        "generator": round(generator, 2),
        "other": round(max(0.0, busy - servers - postgres - generator), 2),
    }


def wait_quiet(cfg: Config) -> float:
    """Wait (at most --quiet-wait s) until the machine is nearly idle before a run.

    The machine is shared (test suites of other work run on the same 2 cores): a run
    starts once one second passes with under 0.3 cores busy, our own idle servers and
    PostgreSQL included. Returns the busy cores of the last probe, kept with the run.
    """
    deadline = time.monotonic() + cfg.quiet_wait
    while True:
        busy0, total0 = _machine_ticks()
        time.sleep(1.0)
        busy1, total1 = _machine_ticks()
        cores = (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)
        if cores < 0.3 or time.monotonic() >= deadline:
            if cores >= 0.3:
                _log(f"machine still busy ({cores:.2f} cores) after {cfg.quiet_wait} s; running")
            return round(cores, 2)
        time.sleep(1.0)


# ---------------------------------------------------------------------------- servers


def calltrack_bin() -> Path:
    """The `calltrack` command of this interpreter's environment."""
    candidate = Path(sys.executable).with_name("calltrack")
    if candidate.exists():
        return candidate
    found = shutil.which("calltrack")
    if not found:
        raise SystemExit("calltrack is not installed in this environment")
    return Path(found)


def server_env(cfg: Config, *, admin_token: str) -> dict[str, str]:
    """Environment of `calltrack` processes pointed at the bench database."""
    env = dict(os.environ)
    env.update(
        {
            "CALLTRACK_DATABASE_URL": sqlalchemy_url(cfg),
            "CALLTRACK_PUBLIC_RATE_LIMIT": "off",  # every request comes from 127.0.0.1
            "CALLTRACK_LOG_LEVEL": "WARNING",  # no access log line per request
        }
    )
    if admin_token:
        env["CALLTRACK_ADMIN_TOKEN"] = admin_token
    if cfg.db_pool_size:
        env["CALLTRACK_DB_POOL_SIZE"] = str(cfg.db_pool_size)
    env["CALLTRACK_BENCH_TWEAKS"] = cfg.variant
    return env


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


@dataclass
class Servers:
    """`calltrack serve` processes: N on N ports, or one with N uvicorn workers."""

    procs: list[subprocess.Popen[bytes]]
    ports: list[int]
    log_dir: Path

    @property
    def pids(self) -> list[int]:
        """The pids this harness started (workers are found as their children)."""
        return [p.pid for p in self.procs]


@contextlib.contextmanager
def run_servers(cfg: Config) -> Iterator[Servers]:
    """Start the servers, wait until each answers /readyz, stop them all on the way out."""
    count = cfg.servers if cfg.mode == "ports" else 1
    ports = [cfg.base_port + i for i in range(count)]
    busy = [p for p in ports if not _port_free(p)]
    if busy:
        raise SystemExit(f"ports in use: {busy}; pick another --base-port")
    env = server_env(cfg, admin_token=secrets.token_urlsafe(24))
    log_dir = Path(tempfile.mkdtemp(prefix="calltrack-bench-"))
    servers = Servers([], ports, log_dir)
    try:
        for port in ports:
            cmd = [str(calltrack_bin()), "serve", "--host", HOST, "--port", str(port)]
            if cfg.variant:  # the service with tweaks applied from outside (bench/variants.py)
                cmd = [sys.executable, "-m", "bench.variants", *cmd[1:]]
            if cfg.mode == "workers":
                cmd += ["--workers", str(cfg.servers)]
            with open(log_dir / f"server-{port}.log", "wb") as log:
                servers.procs.append(
                    subprocess.Popen(
                        cmd, env=env, cwd=REPO, stdout=log, stderr=log, start_new_session=True
                    )
                )
        for port in ports:
            _wait_ready(port, servers)
        if cfg.mode == "workers":
            _wait_workers(servers.procs[0].pid, cfg.servers)
        yield servers
    finally:
        stop_processes(servers.procs)


def _wait_ready(port: int, servers: Servers) -> None:
    deadline = time.monotonic() + 60
    url = f"http://{HOST}:{port}/readyz"
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in servers.procs):
            raise RuntimeError(f"a server exited; see the logs in {servers.log_dir}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not ready in 60 s; see {servers.log_dir}")


def _wait_workers(master: int, workers: int) -> None:
    # uvicorn's --workers: the port answers once the first worker is up; wait for all.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = [pid for pid, st in _all_procs().items() if st[1] == master]
        if len(children) >= workers:
            time.sleep(2)  # their lifespans (engine, caches) start after the fork
            return
        time.sleep(0.2)
    raise RuntimeError("uvicorn workers did not start")


def stop_processes(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Stop processes this harness started, with their process groups (their workers)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# ---------------------------------------------------------------------------- wrk


@dataclass
class Run:
    """One measured run at one client count."""

    tool: str
    pool_size: int
    clients: int
    rep: int
    seconds: float
    requests: int
    tracked: int
    fallback: int
    other: int
    errors: int
    leases_per_s: float
    fallback_share: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu: dict[str, float]
    db_leases: int
    extra: dict[str, Any] = field(default_factory=dict)
    # CPU milliseconds each party spent per lease: steadier than rates on a shared machine.
    cpu_ms_per_lease: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.leases_per_s > 0:
            self.cpu_ms_per_lease = {
                k: round(self.cpu[k] / self.leases_per_s * 1000, 3)
                for k in ("servers", "postgres", "generator")
            }


def _wrk_threads(cfg: Config, clients: int, ports: Sequence[int]) -> int:
    if cfg.mode == "ports":
        return min(clients, len(ports))  # one thread per server port
    return min(clients, cfg.wrk_threads)


def wrk_command(
    cfg: Config, clients: int, seconds: int, ports: Sequence[int]
) -> tuple[list[str], dict[str, str]]:
    """wrk's command line and environment for one run."""
    threads = _wrk_threads(cfg, clients, ports)
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(clients),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://{HOST}:{ports[0]}/get_tracking_number",
        "--",
        str(MAX_RATE_PER_THREAD * seconds),
        POOL,
    ]
    env = dict(os.environ)
    env["WRK_PORTS"] = " ".join(str(p) for p in ports)
    return cmd, env


def _counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in before}


def run_wrk(
    cfg: Config,
    servers: Servers,
    *,
    pool_size: int,
    clients: int,
    seconds: int,
    rep: int,
    sampler: Any = None,
    profile_to: Path | None = None,
    busy_before: float | None = None,
) -> Run:
    """One closed-loop wrk run; `sampler(elapsed)` is called about every second if given."""
    cmd, env = wrk_command(cfg, clients, seconds, servers.ports)
    max_requests = MAX_RATE_PER_THREAD * seconds * _wrk_threads(cfg, clients, servers.ports)
    leases_before = lease_count(cfg)
    counters_before = db_counters(cfg)
    before = cpu_snapshot(servers.pids)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    spy = None
    if profile_to is not None:
        spy = start_profile(servers.pids[0], min(15, max(1, seconds - 2)), profile_to)
    try:
        if sampler is not None:
            while proc.poll() is None and time.monotonic() - before.at < seconds + GRACE_SECONDS:
                sampler(time.monotonic() - before.at)
                time.sleep(0.5)
        stdout, stderr = proc.communicate(timeout=seconds + GRACE_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if spy is not None and profile_to is not None:
            finish_profile(spy, profile_to)
    after = cpu_snapshot(servers.pids)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr.decode()}")
    data = _wrk_json(stdout.decode())
    elapsed = data["duration_us"] / 1e6
    errors = sum(data["errors"].values())
    pct = data["latency_us"]["percentiles"]
    answered = data["tracked"] + data["fallback"]
    return Run(
        tool="http",
        pool_size=pool_size,
        clients=clients,
        rep=rep,
        seconds=round(elapsed, 3),
        requests=data["requests"],
        tracked=data["tracked"],
        fallback=data["fallback"],
        other=data["other"],
        errors=errors,
        leases_per_s=round(data["tracked"] / elapsed, 1),
        fallback_share=round(data["fallback"] / answered, 5) if answered else 0.0,
        p50_ms=pct["50"] / 1000,
        p90_ms=pct["90"] / 1000,
        p99_ms=pct["99"] / 1000,
        max_ms=data["latency_us"]["max"] / 1000,
        cpu=cpu_split(before, after),
        db_leases=lease_count(cfg) - leases_before,
        extra={
            "wrk": data,
            "wrk_threads": _wrk_threads(cfg, clients, servers.ports),
            "db": _counter_delta(counters_before, db_counters(cfg)),
            "count_bound_hit": data["requests"] >= max_requests,
            "busy_cores_before": busy_before,
        },
    )


# ---------------------------------------------------------------------------- profile


def start_profile(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (pip install py-spy) sampling one server process, without pausing it."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit("--profile-clients needs py-spy in this environment: pip install py-spy")
    cmd = [str(spy), "record", "--nonblocking", "-r", "200", "-d", str(seconds)]
    cmd += ["-f", "raw", "-o", str(out.with_suffix(".raw")), "-p", str(pid)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Frames whose inclusive share tells where a request's CPU goes.
PROFILE_KEYS = (
    "AccessMiddleware.__call__",
    "solve_dependencies",
    "run_in_threadpool",
    "get_db (",
    "run_endpoint_function",
    "serialize_response",
    "get_tracking_number (",
    "assign (",
    "sessions.py",
    "create (app/db/repositories/sessions.py",
    "claim (app/db/repositories/leases.py",
    "_async_ping",
    "AsyncSession.commit",
    "async_sessionmaker.__call__",
    "AsyncSession.close",
    "Connection.connect",
    "_compile_w_cache",
    "_generate_cache_key",
    "RequestResponseCycle.send",
    "HttpToolsProtocol.data_received",
    "Request.json",
    "_validate_request",
    "TrackingNumberResponse",
    "session_fields",
    "greenlet_spawn",
)


def finish_profile(spy: subprocess.Popen[bytes], out: Path) -> None:
    """Wait for py-spy and write a summary: the main thread's time by frame."""
    spy.wait(timeout=60)
    raw = out.with_suffix(".raw")
    if not raw.exists():
        return
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or stack.startswith("Thread._bootstrap"):
            continue  # only the event loop's thread: the thread pool's idle waits are noise
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return
    idle = own.get("Runner.run (asyncio/runners.py)", 0) + own.get(
        "BaseSelectorEventLoop.select (asyncio/selector_events.py)", 0
    )
    lines = [f"main thread samples: {total}, idle in the event loop: {idle / total:.1%}", ""]
    lines.append("inclusive share of key frames:")
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1]):
        if any(key in frame for key in PROFILE_KEYS):
            lines.append(f"  {n / total:6.1%}  {frame}")
    lines.append("")
    lines.append("own (self) time, top 40:")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:40]:
        lines.append(f"  {n / total:6.1%}  {frame}")
    out.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------- pgbench


_CLAIM_PARAMS = {
    "pool_id": ":pool_id",
    "session_id": ":sid",
    # now(): the transaction's start, as the service takes its clock at the request's start.
    "now": "now()",
    "until": "now()",  # now() + lease_ttl_seconds, which the bench sets to 0
    "available_at": "now()",  # until + cooldown_seconds, 0 as well
}


def _pgbench_sql(sql: str, values: dict[str, str]) -> str:
    # The service's :name parameters replaced by pgbench variables, now() or NULL.
    text_ = re.sub(r"(?<!:):(\w+)", lambda m: values.get(m.group(1), "NULL"), sql)
    return "\n".join(line.strip() for line in text_.strip().splitlines())


def pgbench_script() -> tuple[str, str]:
    """(name, script): one new visitor as the service serves it, in one transaction.

    The statements are the service's own, read from app.db.repositories.leases at run
    time: `_PG_CLAIM_NEW_SESSION` (the session insert and the claim in one statement) where
    the service has it, else the session INSERT followed by `_PG_CLAIM`, as the service did
    before. Parameters become pgbench variables, now() (TTL and cooldown are 0) or NULL
    (the session's context fields, which the benchmark's requests leave empty). The lease's
    foreign key to visitor_session holds as it does for the service.
    """
    one_statement = getattr(leases_repo, "_PG_CLAIM_NEW_SESSION", None)
    if one_statement is not None:
        # A random session id without a round trip: the client's id and a 62-bit random.
        session_id = "('pgb' || :client_id::text || '_' || :r::text)"
        values = dict(_CLAIM_PARAMS, session_id=session_id, s_id=session_id)
        values.update(s_created_at="now()", s_last_seen_at="now()")
        claim = _pgbench_sql(one_statement.text, values)
        script = "\\set r random(1, 4611686018427387903)\nBEGIN;\n" + claim + ";\nEND;\n"
        return "one statement: _PG_CLAIM_NEW_SESSION", script
    claim = _pgbench_sql(_PG_CLAIM.text, _CLAIM_PARAMS)
    return "two statements: INSERT visitor_session, _PG_CLAIM", (
        "BEGIN;\n"
        "INSERT INTO visitor_session (id, created_at, last_seen_at)\n"
        "VALUES (replace(gen_random_uuid()::text, '-', ''), now(), now())\n"
        "RETURNING id AS sid \\gset\n"
        f"{claim};\n"
        "END;\n"
    )


def _percentile(sorted_values: Sequence[int], p: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return float(sorted_values[index])


def _pgbench_cmd(cfg: Config, pool_id: int, clients: int, seconds: int, script: Path) -> list[str]:
    return [
        "pgbench",
        "-h",
        cfg.pg_host,
        "-p",
        str(cfg.pg_port),
        "-U",
        cfg.pg_user,
        "-n",  # no vacuum of pgbench's own tables
        "-M",
        "prepared",  # as asyncpg does: statements prepared once per connection
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-T",
        str(seconds),
        "-D",
        f"pool_id={pool_id}",
        "-f",
        str(script),
    ]


def run_pgbench(
    cfg: Config,
    *,
    pool_id: int,
    pool_size: int,
    clients: int,
    seconds: int,
    rep: int,
    busy_before: float | None = None,
) -> Run:
    """One pgbench run of the claim at `clients` connections, per-transaction logged."""
    with tempfile.TemporaryDirectory(prefix="calltrack-pgbench-") as tmp:
        script = Path(tmp) / "claim.sql"
        script.write_text(pgbench_script()[1])
        cmd = _pgbench_cmd(cfg, pool_id, clients, seconds, script)
        cmd += ["-l", f"--log-prefix={tmp}/tx", cfg.database]
        leases_before = lease_count(cfg)
        counters_before = db_counters(cfg)
        before = cpu_snapshot([])
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + GRACE_SECONDS, check=False
        )
        # Let the postmaster reap pgbench's backends: an exited backend's CPU moves to the
        # postmaster's cutime only then, and a snapshot taken meanwhile can miss it.
        time.sleep(0.3)
        after = cpu_snapshot([])
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed: {done.stderr}\n{done.stdout}")
        latencies: list[int] = []
        for log in Path(tmp).glob("tx*"):
            for line in log.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    latencies.append(int(parts[2]))
    latencies.sort()
    out = done.stdout
    tps = float(_grab(r"tps = ([\d.]+) \(without initial connection time\)", out))
    txs = int(_grab(r"number of transactions actually processed: (\d+)", out))
    failed = int(_grab(r"number of failed transactions: (\d+)", out, "0"))
    leases = lease_count(cfg) - leases_before
    elapsed = txs / tps if tps else float(seconds)
    return Run(
        tool="pgbench",
        pool_size=pool_size,
        clients=clients,
        rep=rep,
        seconds=round(elapsed, 3),
        requests=txs,
        tracked=leases,
        fallback=max(0, txs - leases),
        other=0,
        errors=failed,
        leases_per_s=round(leases / elapsed, 1) if elapsed else 0.0,
        fallback_share=round(max(0, txs - leases) / txs, 5) if txs else 0.0,
        p50_ms=_percentile(latencies, 50) / 1000,
        p90_ms=_percentile(latencies, 90) / 1000,
        p99_ms=_percentile(latencies, 99) / 1000,
        max_ms=(latencies[-1] / 1000) if latencies else 0.0,
        cpu=cpu_split(before, after),
        db_leases=leases,
        extra={
            "tps": tps,
            "db": _counter_delta(counters_before, db_counters(cfg)),
            "busy_cores_before": busy_before,
        },
    )


def _grab(pattern: str, textual: str, default: str | None = None) -> str:
    match = re.search(pattern, textual)
    if match:
        return match.group(1)
    if default is not None:
        return default
    raise RuntimeError(f"pgbench output lacks {pattern!r}:\n{textual}")


def warm_pgbench(cfg: Config, pool_id: int, clients: int, seconds: int) -> None:
    """A short unmeasured pgbench run at the same client count."""
    with tempfile.TemporaryDirectory(prefix="calltrack-pgbench-") as tmp:
        script = Path(tmp) / "claim.sql"
        script.write_text(pgbench_script()[1])
        cmd = [*_pgbench_cmd(cfg, pool_id, clients, seconds, script), cfg.database]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + GRACE_SECONDS, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed: {done.stderr}\n{done.stdout}")


# ---------------------------------------------------------------------------- the runs


def machine_load() -> dict[str, Any]:
    """Load averages and the busiest other processes, to tell a shared machine."""
    load1, load5, load15 = os.getloadavg()
    return {"loadavg": [round(load1, 2), round(load5, 2), round(load15, 2)]}


def bench_pool(cfg: Config, size: int) -> dict[str, Any]:
    """Every client count, HTTP and pgbench, `repeat` times, on a fresh pool of `size`."""
    _log(f"pool {size}: preparing database {cfg.database}")
    pool_id = prepare_database(cfg, size)
    result: dict[str, Any] = {"size": size, "pool_id": pool_id, "runs": []}
    result["stats_start"] = table_stats(cfg)
    result["load_start"] = machine_load()
    for rep in range(1, cfg.repeat + 1):
        if cfg.http:
            # Servers run only during the HTTP phase: their pooled connections would take
            # the slots pgbench needs (64 clients + 2 x 32 pooled > max_connections 100).
            with run_servers(cfg) as servers:
                for clients in cfg.clients:
                    vacuum(cfg)
                    busy = wait_quiet(cfg)
                    run_wrk(
                        cfg, servers, pool_size=size, clients=clients, seconds=cfg.warmup, rep=0
                    )
                    profile = None
                    if clients == cfg.profile_clients and rep == 1 and size == cfg.pools[0]:
                        tag = f"-{cfg.variant.replace(',', '+')}" if cfg.variant else ""
                        profile = cfg.results_dir / f"profile-{size}-c{clients}{tag}.txt"
                    run = run_wrk(
                        cfg,
                        servers,
                        pool_size=size,
                        clients=clients,
                        seconds=cfg.duration,
                        rep=rep,
                        profile_to=profile,
                        busy_before=busy,
                    )
                    result["runs"].append(asdict(run))
                    _log(_line(run))
        if cfg.pgbench:
            for clients in cfg.clients:
                vacuum(cfg)
                busy = wait_quiet(cfg)
                warm_pgbench(cfg, pool_id, clients, cfg.warmup)
                run = run_pgbench(
                    cfg,
                    pool_id=pool_id,
                    pool_size=size,
                    clients=clients,
                    seconds=cfg.duration,
                    rep=rep,
                    busy_before=busy,
                )
                result["runs"].append(asdict(run))
                _log(_line(run))
    result["stats_end"] = table_stats(cfg)
    result["load_end"] = machine_load()
    return result


def _line(run: Run) -> str:
    return (
        f"pool {run.pool_size} {run.tool:7} c={run.clients:<3} rep {run.rep}: "
        f"{run.leases_per_s:8.1f} leases/s  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
        f"  fallback {run.fallback_share:.2%}  errors {run.errors + run.other}  cpu {run.cpu}"
        f"  cpu ms/lease {run.cpu_ms_per_lease}"
    )


def soak(cfg: Config) -> dict[str, Any]:
    """One long run at `soak_clients` on a fresh pool: leases/s and dead tuples per 10 s."""
    size = cfg.soak_pool
    _log(f"soak: pool {size}, {cfg.soak_clients} clients, {cfg.soak} s")
    prepare_database(cfg, size)
    samples: list[dict[str, Any]] = []
    next_at = [0.0]
    next_vacuum = [float(cfg.soak_vacuum)]
    vacuums: list[dict[str, Any]] = []
    running: list[tuple[float, subprocess.Popen[bytes]]] = []

    def sampler(elapsed: float) -> None:
        if running and running[0][1].poll() is not None:
            started_at, _proc = running.pop()
            vacuums.append({"t": round(started_at, 1), "seconds": round(elapsed - started_at, 1)})
        if cfg.soak_vacuum and elapsed >= next_vacuum[0] and not running:
            # In the background, as autovacuum would run: the load goes on meanwhile.
            cmd = ["psql", "-h", cfg.pg_host, "-p", str(cfg.pg_port), "-U", cfg.pg_user]
            cmd += ["-d", cfg.database, "-Xqc", "VACUUM tracking_number"]
            running.append((elapsed, subprocess.Popen(cmd, stdout=subprocess.DEVNULL)))
            next_vacuum[0] += cfg.soak_vacuum
        if elapsed >= next_at[0]:
            stats = table_stats(cfg)
            stats["t"] = round(elapsed, 1)
            stats["cpu"] = cpu_snapshot(servers.pids).__dict__
            samples.append(stats)
            next_at[0] += 10.0

    with run_servers(cfg) as servers:
        vacuum(cfg)
        busy = wait_quiet(cfg)
        run_wrk(cfg, servers, pool_size=size, clients=cfg.soak_clients, seconds=cfg.warmup, rep=0)
        start = table_stats(cfg)
        run = run_wrk(
            cfg,
            servers,
            pool_size=size,
            clients=cfg.soak_clients,
            seconds=cfg.soak,
            rep=1,
            sampler=sampler,
            busy_before=busy,
        )
        for _, proc in running:
            proc.wait(timeout=600)
        end = table_stats(cfg)
    intervals = []
    for a, b in itertools.pairwise(samples):
        dt = b["t"] - a["t"]
        intervals.append(
            {
                "t_end": b["t"],
                "leases_per_s": round((b["leases"] - a["leases"]) / dt, 1),
                "n_dead_tup": b["n_dead_tup"],
                "autovacuum_count": b["autovacuum_count"],
                "vacuum_count": b["vacuum_count"],
                "claim_index_bytes": b["claim_index_bytes"],
                "table_bytes": b["table_bytes"],
                "cpu": cpu_split(CpuSnapshot(**a["cpu"]), CpuSnapshot(**b["cpu"])),
            }
        )
    _log(_line(run))
    return {
        "pool_size": size,
        "clients": cfg.soak_clients,
        "run": asdict(run),
        "stats_start": start,
        "stats_end": end,
        "wrk_tracked_per_10s": run.extra["wrk"]["tracked_per_10s"],
        "vacuum_every_s": cfg.soak_vacuum,
        "vacuums": vacuums,
        "intervals": intervals,
    }


# ---------------------------------------------------------------------------- summary


def summarise(result: dict[str, Any]) -> str:
    """The Markdown tables of a result: medians over repetitions."""
    lines: list[str] = []
    meta = result["meta"]
    lines.append(
        f"Run {meta['started']} - servers: {meta['servers']} ({meta['mode']}"
        f"{', variant ' + meta['variant'] if meta['variant'] else ''}, "
        f"db pool {meta['db_pool_size'] or 'default'}), "
        f"{meta['duration']} s per run after {meta['warmup']} s warm-up, "
        f"{meta['repeat']} repetition(s), medians shown; load before {meta['load_start']}; "
        f"app at {meta['git']}{' + uncommitted changes' if meta['app_changes'] else ''}; "
        f"pgbench: {meta['pgbench_script']}"
    )
    lines.append("")
    by_size: dict[int, dict[int, list[float]]] = {}  # HTTP runs of every pool of a size
    if result["pools"]:
        lines.append(
            "| pool | clients | HTTP leases/s | p50 ms | p90 ms | p99 ms | fallback | errors "
            "| pgbench leases/s | pgbench p50 ms | pgbench p99 ms | HTTP / pgbench "
            "| cores srv/pg/gen/other | server CPU ms/lease |"
        )
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for pool in result["pools"]:
        size = pool["size"]
        for clients in meta["clients"]:
            http = [r for r in pool["runs"] if r["tool"] == "http" and r["clients"] == clients]
            pgb = [r for r in pool["runs"] if r["tool"] == "pgbench" and r["clients"] == clients]
            h_rate = _median([r["leases_per_s"] for r in http])
            p_rate = _median([r["leases_per_s"] for r in pgb])
            by_size.setdefault(size, {}).setdefault(clients, []).extend(
                r["leases_per_s"] for r in http
            )
            cpu = (
                "/".join(
                    f"{_median([r['cpu'][k] for r in http]):.2f}"
                    for k in ("servers", "postgres", "generator", "other")
                )
                if http
                else ""
            )
            lines.append(
                f"| {size:,} | {clients} | {h_rate:,.0f} "
                f"| {_median([r['p50_ms'] for r in http]):.2f} "
                f"| {_median([r['p90_ms'] for r in http]):.2f} "
                f"| {_median([r['p99_ms'] for r in http]):.2f} "
                f"| {_median([r['fallback_share'] for r in http]):.2%} "
                f"| {sum(r['errors'] + r['other'] for r in http)} "
                f"| {p_rate:,.0f} | {_median([r['p50_ms'] for r in pgb]):.2f} "
                f"| {_median([r['p99_ms'] for r in pgb]):.2f} "
                f"| {(h_rate / p_rate if p_rate else 0):.2f} | {cpu} "
                f"| {_median([r['cpu_ms_per_lease'].get('servers', 0) for r in http]):.2f} |"
            )
    sizes = sorted(by_size)
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        lines.append("")
        lines.append(f"| clients | pool {large:,} / pool {small:,} (median HTTP leases/s) |")
        lines.append("|---:|---:|")
        for clients in meta["clients"]:
            base = _median(by_size[small].get(clients, []))
            ratio = _median(by_size[large].get(clients, [])) / base if base else 0.0
            lines.append(f"| {clients} | {ratio:.3f} |")
    if result.get("soak"):
        s = result["soak"]
        run = s["run"]
        lines.append("")
        lines.append(
            f"Soak: pool {s['pool_size']:,}, {s['clients']} clients, {run['seconds']:.0f} s, "
            f"VACUUM every {s['vacuum_every_s'] or 'never'} s "
            f"(server autovacuum {s['stats_start']['autovacuum_on']}): "
            f"{run['leases_per_s']:,.0f} leases/s, p50 {run['p50_ms']:.2f} ms, "
            f"p99 {run['p99_ms']:.2f} ms, fallback {run['fallback_share']:.2%}, "
            f"errors {run['errors'] + run['other']}"
        )
        lines.append("")
        lines.append(
            "| t (s) | leases/s (db) | tracked/s (wrk) | n_dead_tup | vacuums (auto+bench) "
            "| claim index KiB | table KiB | cores srv/pg |"
        )
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---|")
        wrk_buckets = s["wrk_tracked_per_10s"]
        for i, iv in enumerate(s["intervals"]):
            wrk_rate = wrk_buckets[i] / 10 if i < len(wrk_buckets) else 0
            lines.append(
                f"| {iv['t_end']:.0f} | {iv['leases_per_s']:,.0f} | {wrk_rate:,.0f} "
                f"| {iv['n_dead_tup']:,} | {iv['autovacuum_count']}+{iv['vacuum_count']} "
                f"| {iv['claim_index_bytes'] // 1024:,} | {iv['table_bytes'] // 1024:,} "
                f"| {iv['cpu']['servers']:.2f}/{iv['cpu']['postgres']:.2f} |"
            )
        a, b = s["stats_start"], s["stats_end"]
        lines.append("")
        lines.append(
            f"tracking_number start -> end: n_dead_tup {a['n_dead_tup']:,} -> "
            f"{b['n_dead_tup']:,}, autovacuum_count {a['autovacuum_count']} -> "
            f"{b['autovacuum_count']}, ix_tracking_number_claim "
            f"{a['claim_index_bytes'] // 1024:,} KiB -> {b['claim_index_bytes'] // 1024:,} KiB, "
            f"table {a['table_bytes'] // 1024:,} KiB -> {b['table_bytes'] // 1024:,} KiB, "
            f"HOT updates {b['n_tup_hot_upd'] - a['n_tup_hot_upd']:,} of "
            f"{b['n_tup_upd'] - a['n_tup_upd']:,}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.lease_bench", description=__doc__)
    arg = parser.add_argument
    arg("--pools", type=_ints, default=[100, 10_000, 100_000], help="pool sizes")
    arg("--clients", type=_ints, default=[1, 8, 32, 64], help="concurrent clients")
    arg("--duration", type=int, default=20, help="seconds of each measured run")
    arg("--warmup", type=int, default=3, help="seconds of the unmeasured run before each")
    arg("--repeat", type=int, default=1, help="repetitions of every measured run")
    arg("--servers", type=int, default=2, help="server processes")
    arg("--mode", choices=["ports", "workers"], default="ports", help="N ports or --workers N")
    arg(
        "--db-pool-size",
        type=int,
        default=32,
        help="CALLTRACK_DB_POOL_SIZE per server process (0: the service's default, 10); 32 "
        "lets 64 clients on 2 servers run without opening and closing overflow connections",
    )
    arg("--soak", type=int, default=0, help="seconds of the soak run (0: none)")
    arg("--soak-clients", type=int, default=32)
    arg("--soak-pool", type=int, default=100_000)
    arg("--no-pgbench", dest="pgbench", action="store_false", help="skip the pgbench ceiling")
    arg("--no-http", dest="http", action="store_false", help="skip the HTTP runs")
    arg("--base-port", type=int, default=18100)
    arg("--wrk-threads", type=int, default=2, help="wrk threads in workers mode")
    arg(
        "--profile-clients",
        type=int,
        default=0,
        help="py-spy the first server during the first run at this client count",
    )
    arg(
        "--quiet-wait",
        type=int,
        default=60,
        help="before each run, wait up to this many seconds for other load to stop",
    )
    arg(
        "--no-vacuum",
        dest="vacuum",
        action="store_false",
        help="do not VACUUM tracking_number before each run (see README: autovacuum is off)",
    )
    arg(
        "--soak-vacuum",
        type=int,
        default=60,
        help="VACUUM tracking_number every N s of the soak, as autovacuum would (0: never)",
    )
    arg("--variant", default="", help="tweaks of bench/variants.py, e.g. noaccess,autocommit")
    arg("--pg-host", default="127.0.0.1")
    arg("--pg-port", type=int, default=5432)
    arg("--pg-user", default="postgres")
    arg("--database", default="calltrack_bench", help="dropped and recreated per pool")
    arg("--results-dir", type=Path, default=BENCH_DIR / "results")
    ns = parser.parse_args(argv)
    if ns.pg_host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("the benchmark only targets this machine")
    if ns.duration < 1 or ns.servers < 1 or ns.repeat < 1 or min(ns.clients, default=0) < 1:
        parser.error("durations, servers, repetitions and client counts must be positive")
    return Config(**vars(ns))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write the JSON and print the Markdown summary."""
    cfg = parse_args(argv)
    # Stop cleanly (servers, wrk, pgbench killed by the finally blocks) on SIGTERM, and on
    # SIGINT even when started in the background, where the shell ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    for tool in ("wrk", "pgbench", "psql"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is required (Debian: apt-get install wrk postgresql-client)")
    started = datetime.now(UTC)
    meta = {k: v for k, v in asdict(cfg).items() if k != "results_dir"}
    meta.update(
        started=started.isoformat(timespec="seconds"),
        load_start=machine_load()["loadavg"],
        cores=os.cpu_count(),
        postgres=psql(cfg, "SHOW server_version"),
        git=_git_rev(),
        app_changes=_app_changes(),
        pgbench_script=pgbench_script()[0],
    )
    result: dict[str, Any] = {"meta": meta, "pools": [], "soak": None}
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    out = cfg.results_dir / f"lease-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    try:
        for size in cfg.pools:
            result["pools"].append(bench_pool(cfg, size))
            out.write_text(json.dumps(result, indent=1, default=str))
        if cfg.soak:
            result["soak"] = soak(cfg)
    finally:
        meta["load_end"] = machine_load()["loadavg"]
        meta["app_changes_end"] = _app_changes()
        meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        out.write_text(json.dumps(result, indent=1, default=str))
        _log(f"results: {out}")
    print(summarise(result))
    return 0


def _app_changes() -> str:
    # Uncommitted changes under app/: other people edit the tree while the benchmark runs.
    done = subprocess.run(
        ["git", "status", "--porcelain", "app", "migrations"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return done.stdout.strip()


def _git_rev() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    )
    return done.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
