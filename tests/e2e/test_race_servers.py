"""Races through real servers: two `calltrack serve` processes share one database.

The acceptance rule: a number is never leased to two live sessions. A crowd larger than the
pool hits both servers at once; exactly the pool's numbers are handed out, each once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.db.session import make_engine
from tests.api.helpers import FALLBACK, make_pool, numbers
from tests.support import ADMIN, ADMIN_TOKEN

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30.0  # per server; a cold start takes ~2 s on this machine
REQUEST_SECONDS = 30.0  # one HTTP request, queueing included
RACE_SECONDS = 45.0  # a whole burst of concurrent requests
STOP_SECONDS = 10.0  # graceful stop before SIGKILL
CROWD = 300
POOL_SIZE = 20
HOLDERS = 10
HEARTBEATS_PER_HOLDER = 10
NEWCOMERS = 100
# Pooled database connections per server (and as many overflow): 2 servers use at most 40
# of PostgreSQL's 100, which other test runs and benchmarks on the machine share.
DB_POOL = 10
FALLBACK_DIGITS = FALLBACK.lstrip("+")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """One `calltrack serve` process and the file its stderr goes to."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        """Where the server answers."""
        return f"http://{HOST}:{self.port}"

    def output(self, limit: int = 6000) -> str:
        """The tail of the server's stderr."""
        try:
            data = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"<cannot read {self.log}: {exc}>"
        return data[-limit:]

    def stop(self) -> None:
        """Stop the process: SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_SECONDS)


@dataclass
class Cluster:
    """Servers sharing one database."""

    database_url: str
    servers: list[Server] = field(default_factory=list)

    def logs(self) -> str:
        """Every server's stderr tail, labelled."""
        return "\n".join(
            f"--- server :{s.port} (exit code {s.process.poll()}) stderr ---\n{s.output()}"
            for s in self.servers
        )

    @contextlib.contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        """Attach the servers' stderr to any failure raised inside the block."""
        try:
            yield
        except BaseException as exc:
            exc.add_note(self.logs())
            raise


def _server_env(database_url: str) -> dict[str, str]:
    # Only our settings: a CALLTRACK_REDIS_URL or proxy of the developer's shell must not
    # leak into the servers under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTRACK_")}
    env.update(
        {
            "CALLTRACK_DATABASE_URL": database_url,
            "CALLTRACK_ADMIN_TOKEN": ADMIN_TOKEN,
            "CALLTRACK_PUBLIC_RATE_LIMIT": "off",
            "CALLTRACK_DB_POOL_SIZE": str(DB_POOL),
            "CALLTRACK_LOG_LEVEL": "WARNING",  # one access line per request would be noise
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _spawn(database_url: str, log: Path) -> Server:
    port = free_port()
    with log.open("wb") as sink:
        # The child holds its own copy of the descriptor; ours is closed at once.
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", HOST, "--port", str(port)],
            cwd=ROOT,
            env=_server_env(database_url),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return Server(port=port, process=process, log=log)


def _wait_ready(server: Server, deadline: float) -> bool:
    """Poll /readyz until it answers 200; False if the process exits or time runs out."""
    with httpx.Client(base_url=server.base_url, timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline and server.process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return True
            time.sleep(0.1)
    return False


def start_cluster(cluster: Cluster, workdir: Path, count: int = 2) -> None:
    """Start `count` servers on the cluster's database and wait until all are ready."""
    # All start at once (a cold start is mostly imports), then each is awaited in turn.
    cluster.servers.extend(
        _spawn(cluster.database_url, workdir / f"server{i}.log") for i in range(count)
    )
    for index in range(count):
        for attempt in range(1, 4):
            server = cluster.servers[index]
            if _wait_ready(server, time.monotonic() + STARTUP_SECONDS):
                break
            # A port taken by someone else between free_port() and the bind: try another.
            if attempt == 3 or "address already in use" not in server.output().lower():
                raise RuntimeError(
                    f"server :{server.port} not ready within {STARTUP_SECONDS} s\n" + cluster.logs()
                )
            log = workdir / f"server{index}.{attempt}.log"
            cluster.servers[index] = _spawn(cluster.database_url, log)


@pytest.fixture
def cluster(database_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Two servers on one fresh database (one shared file on SQLite), stopped after the test."""
    running = Cluster(database_url)
    try:
        start_cluster(running, tmp_path)
        yield running
    finally:
        for server in running.servers:
            server.stop()


def clients(cluster: Cluster) -> list[httpx.AsyncClient]:
    """One client per server, each able to hold the whole crowd's connections at once."""
    limits = httpx.Limits(max_connections=CROWD + 50, max_keepalive_connections=CROWD + 50)
    return [
        httpx.AsyncClient(
            base_url=s.base_url,
            timeout=REQUEST_SECONDS,
            limits=limits,
            trust_env=False,  # never through a proxy of the environment: 127.0.0.1 only
        )
        for s in cluster.servers
    ]


async def warm_up(*pair: httpx.AsyncClient) -> None:
    """Fill every server's database connection pool before a race.

    Without this the server that created the pool holds warm connections and serves the
    whole pool before the other has connected to the database: no race across processes.
    """
    async with asyncio.timeout(RACE_SECONDS):
        # As many at once as a server keeps pooled connections.
        await asyncio.gather(*(c.get("/readyz") for c in pair for _ in range(DB_POOL)))


async def ask(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    """POST /get_tracking_number."""
    return await client.post("/get_tracking_number", json=body)


async def burst(jobs: list[tuple[httpx.AsyncClient, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Send every request at once; all must answer 200. Returns the JSON answers in order."""
    async with asyncio.timeout(RACE_SECONDS):
        outcomes = await asyncio.gather(
            *(ask(client, **body) for client, body in jobs), return_exceptions=True
        )
    # Every outcome is awaited before judging, so a failure reports the whole burst.
    summary = Counter(
        o.status_code if isinstance(o, httpx.Response) else type(o).__name__ for o in outcomes
    )
    failures = [
        o.text if isinstance(o, httpx.Response) else repr(o)
        for o in outcomes
        if not isinstance(o, httpx.Response) or o.status_code != 200
    ]
    assert summary == {200: len(jobs)}, (summary, failures[:3])
    return [o.json() for o in outcomes if isinstance(o, httpx.Response)]


async def db_rows(database_url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of one query, read straight from the database the servers share."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(sql), params)]
    finally:
        await engine.dispose()


# Pairs of leases of one number whose [started_at, ends_at) ranges intersect. Timestamps
# compare correctly as text on SQLite too: UTCDateTime stores a fixed-width naive UTC form.
OVERLAPS = """
    SELECT a.id, b.id FROM lease a JOIN lease b
      ON a.number_id = b.number_id AND a.id < b.id
     AND a.started_at < b.ends_at AND b.started_at < a.ends_at
"""
LEASES = """
    SELECT l.session_id, n.e164 FROM lease l
    JOIN tracking_number n ON n.id = l.number_id
    JOIN pool p ON p.id = l.pool_id
    WHERE p.name = :pool
"""
HOLDERS_NOW = """
    SELECT n.leased_session_id, n.e164 FROM tracking_number n
    JOIN pool p ON p.id = n.pool_id
    WHERE p.name = :pool AND n.leased_session_id IS NOT NULL
"""


def instant(value: str) -> datetime:
    """An answer's ISO timestamp ('...Z') as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def stats(client: httpx.AsyncClient, pool: str = "default") -> dict[str, Any]:
    """The pool's stats through the ops API."""
    response = await client.get(f"/v1/pools/{pool}/stats", headers=ADMIN)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_servers_alive(cluster: Cluster) -> None:
    """Both servers survived the burst and logged no error."""
    for server in cluster.servers:
        assert server.process.poll() is None, f"server :{server.port} died"
        output = server.output(limit=1_000_000)
        assert "Traceback" not in output
        assert '"level": "error"' not in output


async def test_crowd_larger_than_the_pool_gets_each_number_once(cluster: Cluster) -> None:
    pool_numbers = numbers(POOL_SIZE)
    first, second = clients(cluster)
    async with first, second:
        with cluster.logs_on_failure():
            await make_pool(first, size=POOL_SIZE, lease_ttl_seconds=1800, cooldown_seconds=900)
            await warm_up(first, second)
            # Alternate servers so both serve half the crowd, interleaved in time.
            answers = await burst([((first, second)[i % 2], {}) for i in range(CROWD)])

            tracked = [a for a in answers if a["tracked"]]
            assert len(tracked) == POOL_SIZE
            got = [a["phonenumber"] for a in tracked]
            assert len(set(got)) == POOL_SIZE, Counter(got).most_common(3)
            assert sorted(got) == sorted(n.lstrip("+") for n in pool_numbers)
            # Both servers handed out numbers: the race really crossed processes.
            by_server = Counter(i % 2 for i, a in enumerate(answers) if a["tracked"])
            assert set(by_server) == {0, 1}, by_server

            rest = [a for a in answers if not a["tracked"]]
            assert len(rest) == CROWD - POOL_SIZE
            assert all(a["phonenumber"] == FALLBACK_DIGITS for a in rest)
            assert all(a["fallback_reason"] == "pool_exhausted" for a in rest)
            assert all(a["expires_at"] is None for a in rest)
            sessions = [a["session_id"] for a in answers]
            assert len(set(sessions)) == CROWD  # every visitor is a session of its own

            url = cluster.database_url
            leases = await db_rows(url, LEASES, pool="default")
            assert len(leases) == POOL_SIZE
            assert sorted(leases) == sorted(
                (a["session_id"], "+" + a["phonenumber"]) for a in tracked
            )
            assert await db_rows(url, OVERLAPS) == []
            assert sorted(await db_rows(url, HOLDERS_NOW, pool="default")) == sorted(leases)

            for client in (first, second):  # both servers read the same truth
                measured = await stats(client)
                assert measured["size"] == POOL_SIZE
                assert measured["leased_now"] == POOL_SIZE
                assert measured["leases_started"] == POOL_SIZE
                assert measured["fallbacks_total"] == CROWD - POOL_SIZE
                assert measured["fallbacks_by_reason"] == {"pool_exhausted": CROWD - POOL_SIZE}
                assert measured["peak_concurrent_leases"] == POOL_SIZE
            assert_servers_alive(cluster)


async def test_heartbeats_keep_numbers_while_newcomers_race_for_them(cluster: Cluster) -> None:
    first, second = clients(cluster)
    async with first, second:
        with cluster.logs_on_failure():
            # As many numbers as holders: any number a newcomer got would be a holder's.
            await make_pool(first, size=HOLDERS, lease_ttl_seconds=1800, cooldown_seconds=900)
            await warm_up(first, second)
            held = await burst([((first, second)[i % 2], {}) for i in range(HOLDERS)])
            assert all(h["tracked"] for h in held)
            owner = {h["session_id"]: h for h in held}
            assert len({h["phonenumber"] for h in held}) == HOLDERS

            # Every holder re-asks several times at once, on both servers, among newcomers.
            jobs: list[tuple[httpx.AsyncClient, dict[str, Any]]] = []
            for round_ in range(HEARTBEATS_PER_HOLDER):
                for i, h in enumerate(held):
                    jobs.append(
                        ((first, second)[(i + round_) % 2], {"session_id": h["session_id"]})
                    )
            jobs += [((first, second)[i % 2], {}) for i in range(NEWCOMERS)]
            order = list(range(len(jobs)))
            # Interleave heartbeats and newcomers deterministically (no RNG: reproducible).
            order.sort(key=lambda k: (k * 7919) % len(jobs))
            shuffled = [jobs[k] for k in order]
            answers = await burst(shuffled)

            beats = [a for (_, body), a in zip(shuffled, answers, strict=True) if body]
            newcomers = [a for (_, body), a in zip(shuffled, answers, strict=True) if not body]
            assert len(beats) == HOLDERS * HEARTBEATS_PER_HOLDER
            assert len(newcomers) == NEWCOMERS
            for beat in beats:
                mine = owner[beat["session_id"]]
                assert beat["tracked"] is True
                assert beat["phonenumber"] == mine["phonenumber"]
                assert instant(beat["expires_at"]) >= instant(mine["expires_at"])
            assert not [a for a in newcomers if a["tracked"]]
            assert {a["fallback_reason"] for a in newcomers} == {"pool_exhausted"}
            assert not {a["session_id"] for a in newcomers} & set(owner)

            url = cluster.database_url
            expected = sorted((sid, "+" + h["phonenumber"]) for sid, h in owner.items())
            # Renewals extend the lease row in place: still one lease per holder.
            assert sorted(await db_rows(url, LEASES, pool="default")) == expected
            assert sorted(await db_rows(url, HOLDERS_NOW, pool="default")) == expected
            assert await db_rows(url, OVERLAPS) == []

            measured = await stats(second)
            assert measured["leased_now"] == HOLDERS
            assert measured["leases_started"] == HOLDERS
            assert measured["fallbacks_by_reason"] == {"pool_exhausted": NEWCOMERS}
            assert_servers_alive(cluster)
