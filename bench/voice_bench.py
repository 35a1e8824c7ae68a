"""Voice webhook benchmark: POST /webhooks/cloudonix/voice on a large PostgreSQL database.

A database with 100,000 tracking numbers, over 1,000,000 past leases (each with its own
visitor session), live leases on a share of the numbers and past calls from repeat callers.
Then, on `calltrack serve` processes (1 and 2), each new call a unique CallSid:

- closed loop: `wrk` with 50 connections, each sending its next webhook as soon as the
  previous one is answered (50 calls always in flight: a capacity test);
- open loop: webhooks arriving at a fixed mean rate (Poisson arrivals, 50/100/200 per s)
  from an asyncio generator in this process, latency from each call's scheduled arrival;
- replay: the same CallSids over and over (the idempotent path), closed loop;
- the attribution lookup alone: `app.services.attribution.attribute` and the first-time
  check, timed in this process on one connection, and EXPLAIN (ANALYZE, BUFFERS) of every
  statement one new call runs.

After every run the calls stored under the run's tag are counted against the answers.

    python -m bench.voice_bench [--servers 1,2] [--connections 50] [--duration 25]
        [--rates 50,100,200] [--repeat 3] [--setup]

Every load targets 127.0.0.1 only and is bounded in time and count. Results: JSON under
bench/results/ and a Markdown summary on stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import json
import math
import os
import random
import re
import resource
import secrets
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import phonenumbers
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import utc_now
from app.db.repositories import calls as calls_repo
from app.db.repositories.calls import NumberRoute
from app.db.session import make_engine, make_sessionmaker
from app.metrics import Metrics
from app.services import pools as pool_service
from app.services.attribution import attribute
from app.services.calls import InboundCall
from app.services.desk import CallDesk
from app.settings import Settings
from bench.common import log as _log
from bench.common import median as _median
from bench.common import psql as _psql
from bench.common import sqlalchemy_url as _sqlalchemy_url
from bench.common import terminate as _terminate
from bench.common import wait_calm as _wait_calm
from bench.common import wrk_json as _wrk_json
from bench.lease_bench import (
    Servers,
    _percentile,
    _port_free,
    _wait_ready,
    _wait_workers,
    calltrack_bin,
    cpu_snapshot,
    cpu_split,
    start_profile,
    stop_processes,
    us_numbers,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LUA = BENCH_DIR / "voice.lua"
HOST = "127.0.0.1"  # every load targets this machine only
POOL = "voice-bench"
DOMAIN = "calltrack-bench.cloudonix.net"
DESTINATION = "+12125550100"
PATH = "/webhooks/cloudonix/voice"
# Bounds on top of the durations: answers per wrk thread and second, seconds past the run.
MAX_RATE_PER_THREAD = 20_000
GRACE_SECONDS = 60
# Callers: repeat callers are +1 646 NXX XXXX from NXX 201 (10,000 per exchange, the same
# formula in SQL and Python); new callers are random numbers of these area codes.
REPEAT_NPA = 646
NEW_CALLER_NPAS = (617, 312, 415, 303, 512, 206, 404, 305)
LEASE_TTL = 1800
COOLDOWN = 900
MATCH_WINDOW = 900
LIVE_HOURS = 6


@dataclass(frozen=True)
class Config:
    """What the command line asked for."""

    servers: list[int]
    mode: str
    connections: int
    duration: int
    warmup: int
    rates: list[int]
    open_duration: int
    min_samples: int
    repeat: int
    replay: bool
    replay_set: int
    lookups: int
    phases: list[str]
    refresh_every: int
    refresh_rate: int
    freeze_rates: list[int]
    profile: int
    gc_watch: bool
    numbers: int
    leases_per_number: int
    live_share: float
    past_calls: int
    repeat_callers: int
    repeat_share: float
    setup: bool
    drop: bool
    db_pool_size: int
    max_load: float
    calm_wait: int
    base_port: int
    pg_host: str
    pg_port: int
    pg_user: str
    database: str
    results_dir: Path
    seed: int


# ---------------------------------------------------------------------------- PostgreSQL


def psql(cfg: Config, sql: str, *, database: str | None = None) -> str:
    """Run SQL with psql and return its unaligned output."""
    return _psql(cfg, sql, database=database or cfg.database, timeout=3600)


def sqlalchemy_url(cfg: Config) -> str:
    """The service's database URL for the bench database."""
    return _sqlalchemy_url(cfg)


def repeat_caller(index: int) -> str:
    """The `index`-th repeat caller: +1 646 (201 + index // 10,000) (index % 10,000)."""
    return f"+1{REPEAT_NPA}{201 + index // 10_000}{index % 10_000:04d}"


def _repeat_caller_sql(expr: str) -> str:
    # The same formula as repeat_caller(), for an integer SQL expression.
    return (
        f"('+1{REPEAT_NPA}' || (201 + ({expr}) / 10000)::text"
        f" || lpad((({expr}) % 10000)::text, 4, '0'))"
    )


def new_caller_prefixes() -> list[str]:
    """'+1NPANXX' prefixes whose 10,000 lines phonenumbers takes as valid US numbers."""
    found = []
    for npa in NEW_CALLER_NPAS:
        for nxx in range(201, 1000):
            prefix = f"+1{npa}{nxx}"
            if all(
                phonenumbers.is_valid_number(phonenumbers.parse(f"{prefix}{line:04d}"))
                for line in (0, 4321, 9999)
            ):
                found.append(prefix)
    return found


async def _seed(url: str, numbers: Sequence[str]) -> int:
    # The pool and its numbers through the service's own code (validation included).
    engine = make_engine(url)
    try:
        sessionmaker = make_sessionmaker(engine)
        now = datetime.now(UTC)
        async with sessionmaker() as db:
            pool = await pool_service.create(
                db,
                name=POOL,
                destination=DESTINATION,
                fallback_number="+12125550199",
                lease_ttl_seconds=LEASE_TTL,
                cooldown_seconds=COOLDOWN,
                match_window_seconds=MATCH_WINDOW,
                region="US",
                now=now,
            )
            pool_id = pool.id
            await db.commit()
        for start in range(0, len(numbers), 10_000):
            async with sessionmaker() as db:
                await pool_service.add_numbers(
                    db, name=POOL, raw_numbers=numbers[start : start + 10_000], region="US", now=now
                )
                await db.commit()
        return pool_id
    finally:
        await engine.dispose()


def _channel_columns(g: str) -> str:
    # A visit's context from its number g: 40% Google Ads, 20% Facebook, 10% Bing, 10% a
    # newsletter, 10% organic search, 10% direct. Every column the tracker stores is filled.
    h = f"({g} % 10)"
    return f"""
      'https://www.example.com/offer/' || ({g} % 50) || '?ref=' || ({g} % 7),
      CASE WHEN {h} < 4 OR {h} = 8 THEN 'https://www.google.com/'
           WHEN {h} < 6 THEN 'https://m.facebook.com/' WHEN {h} = 6 THEN 'https://www.bing.com/'
      END,
      CASE WHEN {h} < 4 THEN 'google' WHEN {h} < 6 THEN 'facebook' WHEN {h} = 6 THEN 'bing'
           WHEN {h} = 7 THEN 'newsletter' END,
      CASE WHEN {h} < 4 OR {h} = 6 THEN 'cpc' WHEN {h} < 6 THEN 'paid_social'
           WHEN {h} = 7 THEN 'email' END,
      CASE WHEN {h} < 8 THEN 'campaign_' || ({g} % 200) END,
      CASE WHEN {h} < 4 THEN 'keyword ' || ({g} % 1000) END,
      CASE WHEN {h} < 6 THEN 'ad_' || ({g} % 50) END,
      CASE WHEN {h} < 4 THEN 'Cj0KCQ' || md5('gclid' || {g}) END,
      CASE WHEN {h} = 6 THEN md5('msclkid' || {g}) END,
      CASE WHEN {h} IN (4, 5) THEN 'IwAR' || md5('fbclid' || {g}) END,
      'GA1.1.' || ({g} * 7919 % 1000000000) || '.' || (1700000000 + {g} % 50000000),
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)'
        || ' Chrome/' || (110 + {g} % 20) || '.0 Safari/537.36',
      md5('ip' || {g}) || md5('ip2' || {g})"""


SESSION_COLUMNS = (
    "id, created_at, last_seen_at, landing_url, referrer, utm_source, utm_medium, utm_campaign,"
    " utm_term, utm_content, gclid, msclkid, fbclid, ga_client_id, user_agent, ip_hash, phone"
)


def setup_sql(cfg: Config, pool_id: int) -> str:
    """The psql script that loads visits, leases and past calls (INSERT ... SELECT)."""
    n, k = cfg.numbers, cfg.leases_per_number
    past = n * k
    live_pct = round(cfg.live_share * 100)
    r = cfg.repeat_callers
    return f"""
\\timing off
CREATE SCHEMA vb;
CREATE TABLE vb.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TEMP TABLE vb_num AS
  SELECT (row_number() OVER (ORDER BY id) - 1)::int AS idx, id, e164
  FROM tracking_number WHERE pool_id = {pool_id};
ALTER TABLE vb_num ADD PRIMARY KEY (idx);

-- Every visit that got a number: g numbers them. Past visits: lease k (0..{k - 1}) of
-- number idx starts on day k after t0 at a per-number offset of up to 12 h and lasts
-- 30-120 min, so one number's leases never overlap. Live visits: {live_pct}% of the
-- numbers, started up to 21 min ago, leased for {LIVE_HOURS} h (renewed, as it were).
CREATE TEMP TABLE vb_visit AS
  SELECT g, idx, md5('vbs' || g) AS sid, started,
         started + (1800 + (g * 104729) % 5400) * interval '1 second' AS ends, false AS live
  FROM (SELECT g, ((g - 1) % {n})::int AS idx,
               date_trunc('second', now()) - interval '{k + 1} days'
               + ((g - 1) / {n}) * interval '1 day'
               + (((g - 1) % {n}) * 7919 % 43200) * interval '1 second' AS started
        FROM generate_series(1::bigint, {past}::bigint) AS g) AS p
  UNION ALL
  SELECT {past} + 1 + idx, idx, 'live' || md5('vbl' || idx),
         date_trunc('second', now()) - (60 + idx * 31 % 1200) * interval '1 second',
         date_trunc('second', now()) + interval '{LIVE_HOURS} hours', true
  FROM generate_series(0, {n - 1}) AS idx WHERE idx % 100 < {live_pct};
CREATE INDEX ON vb_visit (g);
ANALYZE vb_visit;

INSERT INTO visitor_session ({SESSION_COLUMNS})
SELECT sid, started - interval '5 seconds',
       CASE WHEN live THEN started ELSE ends - interval '60 seconds' END,
       {_channel_columns("g")},
       CASE WHEN g % 100 = 0 THEN {_repeat_caller_sql(f"(g / 100) % {r}")} END
FROM vb_visit ORDER BY g;

INSERT INTO lease (number_id, pool_id, session_id, started_at, ends_at)
SELECT n.id, {pool_id}, v.sid, v.started, v.ends
FROM vb_visit AS v JOIN vb_num AS n USING (idx) ORDER BY v.g;

UPDATE tracking_number AS t
SET leased_session_id = v.sid, leased_until = v.ends,
    available_at = v.ends + interval '{COOLDOWN} seconds'
FROM vb_visit AS v JOIN vb_num AS n USING (idx)
WHERE v.live AND t.id = n.id;

-- Past calls: call c comes from repeat caller c % {r}, on the number of a past visit,
-- 2 min into its lease; 70% were attributed to that visit (dni), 30% were not.
INSERT INTO call (provider, provider_call_id, direction, from_number, to_number,
                  number_id, pool_id, session_id, lease_id, attribution, first_time,
                  source, medium, campaign, forwarded_to, status, started_at, answered_at,
                  ended_at, duration_seconds, talk_seconds, disposition, created_at, updated_at)
SELECT 'cloudonix', md5('vbc' || c), 'inbound', {_repeat_caller_sql(f"c % {r}")}, n.e164,
       l.number_id, l.pool_id,
       CASE WHEN c % 10 < 7 THEN l.session_id END, CASE WHEN c % 10 < 7 THEN l.id END,
       CASE WHEN c % 10 < 7 THEN 'dni' ELSE 'unattributed' END, c <= {r},
       CASE WHEN c % 10 < 7 THEN coalesce(s.utm_source,
            CASE WHEN s.referrer IS NOT NULL THEN 'google' ELSE '(direct)' END) END,
       CASE WHEN c % 10 < 7 THEN coalesce(s.utm_medium,
            CASE WHEN s.referrer IS NOT NULL THEN 'organic' ELSE '(none)' END) END,
       CASE WHEN c % 10 < 7 THEN s.utm_campaign END,
       '{DESTINATION}', 'completed', l.started_at + interval '120 seconds',
       l.started_at + interval '125 seconds', l.started_at + interval '300 seconds', 180, 175,
       'ANSWER', l.started_at + interval '120 seconds', l.started_at + interval '300 seconds'
FROM generate_series(1::bigint, {cfg.past_calls}::bigint) AS c
JOIN vb_visit AS v ON v.g = 1 + (c * 7919) % {past}
JOIN vb_num AS n ON n.idx = v.idx
JOIN lease AS l ON l.session_id = v.sid
JOIN visitor_session AS s ON s.id = v.sid
ORDER BY l.started_at;

INSERT INTO vb.meta VALUES
  ('numbers', '{n}'), ('leases_per_number', '{k}'), ('live_share', '{cfg.live_share}'),
  ('past_calls', '{cfg.past_calls}'), ('repeat_callers', '{r}'), ('pool_id', '{pool_id}'),
  ('created_at', now()::text);
"""


def _meta(cfg: Config) -> dict[str, str] | None:
    exists = psql(
        cfg, f"SELECT 1 FROM pg_database WHERE datname = '{cfg.database}'", database="postgres"
    )
    if not exists:
        return None
    if psql(cfg, "SELECT to_regclass('vb.meta') IS NOT NULL") != "t":
        return None
    rows = psql(cfg, "SELECT key || '=' || value FROM vb.meta ORDER BY key")
    return dict(line.split("=", 1) for line in rows.splitlines()) or None


def _wanted(cfg: Config) -> dict[str, str]:
    return {
        "numbers": str(cfg.numbers),
        "leases_per_number": str(cfg.leases_per_number),
        "live_share": str(cfg.live_share),
        "past_calls": str(cfg.past_calls),
        "repeat_callers": str(cfg.repeat_callers),
    }


def prepare_database(cfg: Config) -> dict[str, Any]:
    """Reuse the bench database when it was loaded with the same sizes; else build it."""
    meta = None
    with contextlib.suppress(subprocess.CalledProcessError):
        meta = _meta(cfg)
    same = meta is not None and all(meta.get(k) == v for k, v in _wanted(cfg).items())
    timings: dict[str, float] = {}
    if cfg.setup or not same:
        _log(f"building database {cfg.database} (this takes a few minutes)")
        mark = time.monotonic()

        def lap(name: str) -> None:
            nonlocal mark
            timings[name] = round(time.monotonic() - mark, 1)
            mark = time.monotonic()

        psql(cfg, f'DROP DATABASE IF EXISTS "{cfg.database}" WITH (FORCE)', database="postgres")
        psql(cfg, f'CREATE DATABASE "{cfg.database}"', database="postgres")
        env = server_env(cfg, token="x" * 32)
        subprocess.run(
            [str(calltrack_bin()), "migrate"], check=True, env=env, cwd=REPO, timeout=300
        )
        lap("create_and_migrate")
        pool_id = asyncio.run(_seed(sqlalchemy_url(cfg), us_numbers(cfg.numbers)))
        lap("pool_and_numbers")
        psql(cfg, setup_sql(cfg, pool_id))
        lap("visits_leases_calls")
        psql(cfg, "VACUUM (ANALYZE)")
        lap("vacuum_analyze")
        _log(f"database built in {sum(timings.values()):.0f} s: {timings}")
    else:
        _log(f"reusing database {cfg.database} (built {meta and meta.get('created_at')})")
    refresh(cfg)
    return {"built": cfg.setup or not same, "timings_s": timings, "sizes": db_sizes(cfg)}


def refresh(cfg: Config) -> None:
    """Remove the calls of earlier bench runs, renew the live leases, VACUUM ANALYZE."""
    psql(
        cfg,
        f"""
DELETE FROM call WHERE provider_call_id LIKE 'vb%';
UPDATE lease SET ends_at = date_trunc('second', now()) + interval '{LIVE_HOURS} hours'
WHERE session_id LIKE 'live%' AND ends_at < now() + interval '2 hours';
UPDATE tracking_number AS t
SET leased_until = l.ends_at, available_at = l.ends_at + interval '{COOLDOWN} seconds'
FROM lease AS l
WHERE l.session_id LIKE 'live%' AND t.id = l.number_id AND t.leased_until <> l.ends_at;
""",
    )
    psql(cfg, "VACUUM (ANALYZE) call, lease, tracking_number, visitor_session")


def db_sizes(cfg: Config) -> dict[str, Any]:
    """Row counts and sizes of the tables the voice webhook reads and writes."""
    out = psql(
        cfg,
        """
SELECT json_build_object(
  'tracking_numbers', (SELECT count(*) FROM tracking_number),
  'leases', (SELECT count(*) FROM lease),
  'live_leases', (SELECT count(*) FROM lease WHERE ends_at > now()),
  'visitor_sessions', (SELECT count(*) FROM visitor_session),
  'calls', (SELECT count(*) FROM call),
  'lease_mb', pg_total_relation_size('lease') / 1048576,
  'visitor_session_mb', pg_total_relation_size('visitor_session') / 1048576,
  'call_mb', pg_total_relation_size('call') / 1048576,
  'database_mb', pg_database_size(current_database()) / 1048576)
""",
    )
    sizes: dict[str, Any] = json.loads(out)
    return sizes


def run_counts(cfg: Config, tag: str) -> dict[str, Any]:
    """The calls stored under a run's tag, by attribution, and how many were first calls."""
    out = psql(
        cfg,
        "SELECT coalesce(json_object_agg(attribution, n), '{}') FROM (SELECT attribution,"
        f" count(*) AS n FROM call WHERE provider_call_id LIKE 'vb{tag}%'"
        " GROUP BY attribution) AS a",
    )
    by_method: dict[str, int] = json.loads(out)
    stored = sum(by_method.values())
    return {
        "stored": stored,
        "by_method": by_method,
        "dni_share": round(by_method.get("dni", 0) / stored, 4) if stored else 0.0,
    }


def vacuum_call(cfg: Config) -> None:
    """VACUUM the call table between runs, standing in for autovacuum (off on this machine):
    every new call is inserted and then updated once (forwarded_to), one dead tuple each."""
    psql(cfg, "VACUUM (ANALYZE) call")


# ---------------------------------------------------------------------------- traffic


@dataclass(frozen=True)
class Traffic:
    """What the generated calls look like: who calls which number."""

    to_file: Path
    repeat_file: Path
    new_prefix_file: Path
    to_numbers: list[str]
    repeat_callers: list[str]
    new_prefixes: list[str]
    repeat_share: float
    token: str


def make_traffic(cfg: Config, workdir: Path, token: str) -> Traffic:
    """Write the number lists wrk's threads read, and keep them for the Python generator."""
    to_numbers = psql(cfg, "SELECT e164 FROM tracking_number ORDER BY id").split()
    repeat = [repeat_caller(i) for i in range(cfg.repeat_callers)]
    prefixes = new_caller_prefixes()
    files = []
    for name, values in (("to", to_numbers), ("repeat", repeat), ("new", prefixes)):
        path = workdir / f"{name}.txt"
        path.write_text("\n".join(values) + "\n")
        files.append(path)
    return Traffic(
        files[0], files[1], files[2], to_numbers, repeat, prefixes, cfg.repeat_share, token
    )


def voice_body(sid: str, *, to: str, caller: str, start_ms: int) -> bytes:
    """The voice-application request body, as tests/calls/helpers.py sends it."""
    body = {
        "CallSid": sid,
        "Session": sid,
        "From": caller,
        "To": to,
        "CallerName": "Bench Caller",
        "Direction": "inbound",
        "CallStatus": "in-progress",
        "Domain": DOMAIN,
        "AccountSid": DOMAIN,
        "ApiVersion": "1",
        "ApplicationSid": "calltrack",
        "SessionData": {
            "token": sid,
            "status": "processing",
            "callStartTime": start_ms,
            "profile": {"trunk-sip-headers": {"X-Carrier": "bench"}},
        },
        "Application": {"name": "calltrack", "url": "http://calltrack.bench/"},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def pick_call(traffic: Traffic, rng: random.Random) -> tuple[str, str]:
    """(To, From) of one call: any tracking number; a repeat caller or a new number."""
    to = rng.choice(traffic.to_numbers)
    if rng.random() < traffic.repeat_share:
        return to, rng.choice(traffic.repeat_callers)
    return to, f"{rng.choice(traffic.new_prefixes)}{rng.randrange(10_000):04d}"


def http_request(traffic: Traffic, sid: str, to: str, caller: str, port: int) -> bytes:
    """The whole HTTP/1.1 request of one voice webhook."""
    body = voice_body(sid, to=to, caller=caller, start_ms=int(time.time() * 1000))
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {traffic.token}\r\nUser-Agent: Cloudonix APP.Core/5.3.673\r\n"
        f"X-CX-Domain: {DOMAIN}\r\nX-CX-Source: trunk\r\nX-CX-Session: {sid}\r\n"
        f"X-CX-From: {caller}\r\nX-CX-To: {to}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# ---------------------------------------------------------------------------- servers


# `calltrack serve` with an observer: every garbage collection of generation 2, or longer
# than 5 ms, is written to stderr (the server's log) with its wall-clock time and length.
# Nothing of the service changes; the callback costs about a microsecond per collection.
GC_WATCH = """
import gc, os, sys, threading, time
_since = [0.0]
def _watch(phase, info):
    if phase == "start":
        _since[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _since[0]) * 1000
    if info["generation"] == 2 or ms > 5:
        line = f"GCPAUSE {time.time():.3f} {info['generation']} {ms:.2f}"
        print(line, file=sys.stderr, flush=True)
gc.callbacks.append(_watch)
_freeze = float(os.environ.get("VB_GC_FREEZE_AFTER") or 0)
if _freeze:  # the gcfreeze variant: what gc.freeze() after the routing load would buy
    def _later():
        time.sleep(_freeze)
        gc.collect()
        gc.freeze()
        print(f"GCFREEZE {time.time():.3f} {gc.get_freeze_count()}", file=sys.stderr, flush=True)
    threading.Thread(target=_later, daemon=True).start()
from app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def gc_pauses(servers: Servers, since: float, until: float) -> dict[str, Any]:
    """The servers' collections (GC_WATCH lines) between two wall-clock times."""
    gen2: list[float] = []
    other: list[float] = []
    for log in servers.log_dir.glob("server-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if not line.startswith("GCPAUSE "):
                continue
            _, at, generation, ms = line.split()
            if since <= float(at) <= until:
                (gen2 if generation == "2" else other).append(float(ms))
    return {
        "gen2": len(gen2),
        "gen2_max_ms": max(gen2, default=0.0),
        "gen2_total_ms": round(sum(gen2), 1),
        "younger_over_5ms": len(other),
        "younger_max_ms": max(other, default=0.0),
    }


def server_env(cfg: Config, *, token: str, pool_size: int = 0) -> dict[str, str]:
    """Environment of `calltrack` processes: the Cloudonix provider (as in production; its
    API, never called here, points at a closed local port) and the bench database."""
    env = dict(os.environ)
    env.update(
        {
            "CALLTRACK_DATABASE_URL": sqlalchemy_url(cfg),
            "CALLTRACK_WEBHOOK_TOKEN": token,
            "CALLTRACK_ADMIN_TOKEN": secrets.token_urlsafe(24),
            "CALLTRACK_PROVIDER": "cloudonix",
            "CALLTRACK_CLOUDONIX_API_KEY": "XI" + secrets.token_hex(16),
            "CALLTRACK_CLOUDONIX_DOMAIN": DOMAIN,
            "CALLTRACK_CLOUDONIX_BASE_URL": "http://127.0.0.1:9",
            "CALLTRACK_PUBLIC_RATE_LIMIT": "off",
            "CALLTRACK_LOG_LEVEL": "WARNING",  # no access log line per request
        }
    )
    if pool_size:
        env["CALLTRACK_DB_POOL_SIZE"] = str(pool_size)
    return env


def pool_size_for(cfg: Config, servers: int) -> int:
    """DB connections per server process: enough for its share of the connections, so the
    pool never opens and closes overflow connections (see the lease benchmark)."""
    return cfg.db_pool_size or math.ceil(cfg.connections / servers)


@contextlib.contextmanager
def run_servers(
    cfg: Config, count: int, token: str, extra_env: dict[str, str] | None = None
) -> Iterator[Servers]:
    """`count` server processes on `count` ports (or one with --workers), stopped on exit."""
    ports = [cfg.base_port + i for i in range(count if cfg.mode == "ports" else 1)]
    busy = [p for p in ports if not _port_free(p)]
    if busy:
        raise SystemExit(f"ports in use: {busy}; pick another --base-port")
    env = server_env(cfg, token=token, pool_size=pool_size_for(cfg, count))
    env.update(extra_env or {})
    log_dir = Path(tempfile.mkdtemp(prefix="calltrack-voice-bench-"))
    servers = Servers([], ports, log_dir)
    failed = True
    try:
        for port in ports:
            cmd = [str(calltrack_bin()), "serve", "--host", HOST, "--port", str(port)]
            if cfg.gc_watch and cfg.mode == "ports":  # workers are fresh interpreters
                cmd = [sys.executable, "-c", GC_WATCH, *cmd[1:]]
            if cfg.mode == "workers":
                cmd += ["--workers", str(count)]
            with open(log_dir / f"server-{port}.log", "wb") as log:
                servers.procs.append(
                    subprocess.Popen(
                        cmd, env=env, cwd=REPO, stdout=log, stderr=log, start_new_session=True
                    )
                )
        for port in ports:
            _wait_ready(port, servers)
        if cfg.mode == "workers" and count > 1:
            _wait_workers(servers.procs[0].pid, count)
        time.sleep(2)  # each process loads its routing table (100,000 routes) at start
        yield servers
        failed = False
    finally:
        stop_processes(servers.procs)
        if failed:
            _log(f"server logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


_METRIC = re.compile(
    r'^calltrack_(calls_recorded|voice_events_deferred)_total\{(\w+)="(\w+)"\} (\S+)'
)


def scrape(servers: Servers) -> dict[str, float]:
    """Calls recorded by attribution and events deferred, summed over the servers."""
    totals: dict[str, float] = {}
    for port in servers.ports:
        with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as answer:
            body = answer.read().decode()
        for line in body.splitlines():
            match = _METRIC.match(line)
            if match:
                key = f"{match.group(1)}:{match.group(3)}"
                totals[key] = totals.get(key, 0.0) + float(match.group(4))
    return totals


def log_problems(servers: Servers) -> int:
    """Lines the servers logged at WARNING or above (deferred events, failures, tracebacks);
    the servers log JSON at WARNING level, so any line is a problem."""
    count = 0
    for log in servers.log_dir.glob("server-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"level": "warning"' in line or '"level": "error"' in line or "Traceback" in line:
                count += 1
    return count


# ---------------------------------------------------------------------------- calm


def wait_calm(cfg: Config) -> dict[str, Any]:
    """Before a measured run: wait for a calm machine (see bench.common.wait_calm)."""
    return _wait_calm(cfg.max_load, cfg.calm_wait, pause=2)


# ---------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One measured run."""

    kind: str  # closed, open, replay
    servers: int
    rep: int
    tag: str
    target_rate: float  # calls/s asked for (open loop); 0 for the closed loop
    seconds: float
    sent: int
    ok: int
    non_200: int
    errors: int
    calls_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    cpu: dict[str, float]
    calm: dict[str, Any]
    stored: int = 0
    variant: str = ""  # "gcfreeze": the server with gc.freeze() after start (see GC_WATCH)
    by_method: dict[str, int] = field(default_factory=dict)
    dni_share: float = 0.0
    deferred: float = 0.0
    log_problems: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    cpu_ms_per_call: dict[str, float] = field(default_factory=dict)

    def finish(self) -> None:
        """CPU milliseconds per answered call: steadier than rates on a shared machine."""
        if self.calls_per_s > 0:
            self.cpu_ms_per_call = {
                k: round(self.cpu[k] / self.calls_per_s * 1000, 3)
                for k in ("servers", "postgres", "generator")
            }


def run_wrk(
    cfg: Config,
    servers: Servers,
    traffic: Traffic,
    *,
    seconds: int,
    tag: str,
    mode: str = "new",
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """One closed-loop wrk run; returns wrk's result line plus the CPU split."""
    threads = len(servers.ports) if cfg.mode == "ports" else 2
    threads = min(threads, cfg.connections)
    cmd = ["wrk", "-t", str(threads), "-c", str(cfg.connections), "-d", f"{seconds}s"]
    cmd += ["--timeout", "10s", "-s", str(LUA), f"http://{HOST}:{servers.ports[0]}{PATH}"]
    cmd += ["--", str(MAX_RATE_PER_THREAD * seconds), tag, mode, str(cfg.replay_set)]
    cmd += [str(cfg.seed + sum(map(ord, tag))), str(threads)]
    env = dict(os.environ)
    env.update(
        {
            "WRK_PORTS": " ".join(str(p) for p in servers.ports),
            "VB_TO_FILE": str(traffic.to_file),
            "VB_REPEAT_FILE": str(traffic.repeat_file),
            "VB_NEW_PREFIX_FILE": str(traffic.new_prefix_file),
            "VB_REPEAT_SHARE": str(traffic.repeat_share),
            "VB_TOKEN": traffic.token,
            "VB_DOMAIN": DOMAIN,
        }
    )
    before = cpu_snapshot(servers.pids)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    spy = None
    if profile_to is not None:
        spy = start_profile(servers.pids[0], max(1, seconds - 2), profile_to)
    try:
        stdout, stderr = proc.communicate(timeout=seconds + GRACE_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if spy is not None and profile_to is not None:
            spy.wait(timeout=60)
            summarise_profile(profile_to)
    after = cpu_snapshot(servers.pids)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr.decode()}")
    data = _wrk_json(stdout.decode())
    data["cpu"] = cpu_split(before, after)
    data["count_bound_hit"] = data["requests"] >= MAX_RATE_PER_THREAD * seconds * threads
    return data


def closed_run(
    cfg: Config,
    servers: Servers,
    traffic: Traffic,
    *,
    count: int,
    rep: int,
    tag: str,
    kind: str = "closed",
) -> Run:
    """A measured closed-loop run (after the caller's warm-up), checked against the database."""
    vacuum_call(cfg)
    calm = wait_calm(cfg)
    metrics_before = scrape(servers)
    problems_before = log_problems(servers)
    wall = time.time()
    data = run_wrk(
        cfg,
        servers,
        traffic,
        seconds=cfg.duration,
        tag=tag,
        mode="replay" if kind == "replay" else "new",
    )
    elapsed = data["duration_us"] / 1e6
    pct = data["latency_us"]["percentiles"]
    run = Run(
        kind=kind,
        servers=count,
        rep=rep,
        tag=tag,
        target_rate=0.0,
        seconds=round(elapsed, 3),
        sent=data["sent"],
        ok=data["ok"],
        non_200=data["other"],
        errors=sum(data["errors"].values()) - data["errors"]["status"],
        calls_per_s=round(data["ok"] / elapsed, 1),
        p50_ms=pct["50"] / 1000,
        p90_ms=pct["90"] / 1000,
        p99_ms=pct["99"] / 1000,
        p999_ms=pct["99.9"] / 1000,
        max_ms=data["latency_us"]["max"] / 1000,
        cpu=data["cpu"],
        calm=calm,
        extra={"wrk": data, "dial": data["dial"], "wall": [wall, time.time()]},
    )
    _check(cfg, servers, run, metrics_before, problems_before)
    return run


def _check(
    cfg: Config,
    servers: Servers,
    run: Run,
    metrics_before: dict[str, float],
    problems_before: int,
) -> None:
    time.sleep(1.5)  # events deferred by a slow database are replayed within a second
    metrics_after = scrape(servers)
    run.deferred = sum(
        v - metrics_before.get(k, 0.0)
        for k, v in metrics_after.items()
        if k.startswith("voice_events_deferred")
    )
    run.extra["recorded_metric"] = {
        k.split(":", 1)[1]: v - metrics_before.get(k, 0.0)
        for k, v in metrics_after.items()
        if k.startswith("calls_recorded")
    }
    run.log_problems = log_problems(servers) - problems_before
    run.extra["gc"] = gc_pauses(servers, *run.extra["wall"])
    if run.kind != "replay":
        counts = run_counts(cfg, run.tag)
        run.stored = counts["stored"]
        run.by_method = counts["by_method"]
        run.dni_share = counts["dni_share"]
    run.finish()
    _log(_line(run))


# ---------------------------------------------------------------------------- open loop


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# uvicorn closes a keep-alive connection after 5 s without a request: never reuse one that
# has been idle for this long.
IDLE_LIMIT = 4.0


class _Connections:
    """Keep-alive connections to one server port, opened as needed, most recent first."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[Conn, float]] = []
        self.opened = 0

    async def get(self, *, fresh: bool = False) -> tuple[Conn, bool]:
        """A connection, and whether it was reused (a reused one may have been closed)."""
        now = time.monotonic()
        while self.idle and not fresh:
            conn, since = self.idle.pop()
            if now - since < IDLE_LIMIT:
                return conn, True
            conn[1].close()
        self.opened += 1
        return await asyncio.open_connection(HOST, self.port), False

    def put(self, conn: Conn) -> None:
        self.idle.append((conn, time.monotonic()))

    def close(self) -> None:
        for (_, writer), _since in self.idle:
            writer.close()
        self.idle.clear()


async def _exchange(conn: Conn, data: bytes) -> tuple[int, bytes]:
    reader, writer = conn
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def open_loop(
    traffic: Traffic,
    ports: Sequence[int],
    *,
    rate: float,
    seconds: float,
    tag: str,
    seed: int,
    max_in_flight: int = 400,
    answer_within: float = 10.0,
) -> dict[str, Any]:
    """Poisson arrivals at `rate` per second for `seconds` (at most rate * seconds calls),
    round robin over the ports. Latency runs from a call's scheduled arrival to the last
    byte of its answer, so a late generator or a queue in the server both count."""
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    arrivals: list[float] = []
    at = 0.0
    while True:
        at += rng.expovariate(rate)
        if at >= seconds:
            break
        arrivals.append(at)
    pools = [_Connections(p) for p in ports]
    for pool in pools:  # a few connections up front: the first calls need not connect
        for _ in range(4):
            pool.put((await pool.get(fresh=True))[0])
    latencies: list[int] = []  # microseconds
    timeline: list[tuple[float, int]] = []  # (scheduled offset s, latency us)
    lateness: list[int] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    retried: list[int] = []
    dial = 0
    in_flight = 0
    peak = 0
    dropped = 0

    async def one(index: int, scheduled: float) -> None:
        nonlocal dial, in_flight, peak
        pool = pools[index % len(pools)]
        sid = f"vb{tag}o{index}"
        to, caller = pick_call(traffic, rng)
        lateness.append(int((loop.time() - scheduled) * 1e6))
        in_flight += 1
        peak = max(peak, in_flight)
        conn: Conn | None = None
        try:
            async with asyncio.timeout(answer_within):
                conn, reused = await pool.get()
                request = http_request(traffic, sid, to, caller, pool.port)
                try:
                    status, body = await _exchange(conn, request)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    partial: bytes = getattr(exc, "partial", b"")
                    if not reused or partial:
                        raise
                    # The server closed the idle connection as we reused it: it never saw
                    # the request, so send it again on a new one, as HTTP clients do.
                    conn[1].close()
                    retried.append(index)
                    conn, _ = await pool.get(fresh=True)
                    status, body = await _exchange(conn, request)
            latencies.append(int((loop.time() - scheduled) * 1e6))
            timeline.append((round(scheduled - start, 3), latencies[-1]))
            statuses[status] = statuses.get(status, 0) + 1
            dial += b"<Dial" in body
            pool.put(conn)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            errors.append(type(exc).__name__)
            if conn is not None:
                conn[1].close()
        finally:
            in_flight -= 1

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = loop.time() + 0.1
    tasks: list[asyncio.Task[None]] = []
    for index, offset in enumerate(arrivals):
        delay = start + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= max_in_flight:
            dropped += 1  # the servers are far behind: an open loop has lost its meaning
            continue
        tasks.append(asyncio.create_task(one(index, start + offset)))
    if tasks:
        await asyncio.wait(tasks, timeout=answer_within + 5)
    elapsed = loop.time() - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    for pool in pools:
        pool.close()
    latencies.sort()
    lateness.sort()
    ok = statuses.get(200, 0)
    return {
        "scheduled": len(arrivals),
        "sent": len(tasks),
        "ok": ok,
        "statuses": {str(k): v for k, v in statuses.items()},
        "non_200": sum(v for k, v in statuses.items() if k != 200),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "dial": dial,
        "dropped": dropped,
        "retried_on_new_connection": len(retried),
        "slower_than_100ms": sum(1 for v in latencies if v > 100_000),
        "slower_than_20ms": sum(1 for v in latencies if v > 20_000),
        # When the slowest calls arrived: together (a pause of the server) or spread out.
        "slowest": sorted(timeline, key=lambda t: -t[1])[:20],
        "elapsed_s": round(elapsed, 3),
        "peak_in_flight": peak,
        "connections_opened": sum(p.opened for p in pools),
        "latency_us": {str(p): _percentile(latencies, p) for p in (50, 90, 99, 99.9, 100)},
        "lateness_us": {str(p): _percentile(lateness, p) for p in (50, 99, 100)},
        "generator_cpu_s": round(
            usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime, 3
        ),
    }


def open_run(
    cfg: Config,
    servers: Servers,
    traffic: Traffic,
    *,
    count: int,
    rep: int,
    tag: str,
    rate: int,
    kind: str = "open",
) -> Run:
    """A measured open-loop run at `rate` calls per second."""
    vacuum_call(cfg)
    calm = wait_calm(cfg)
    metrics_before = scrape(servers)
    problems_before = log_problems(servers)
    before = cpu_snapshot(servers.pids)
    wall = time.time()
    data = asyncio.run(
        open_loop(
            traffic,
            servers.ports,
            rate=rate,
            # Enough calls for a p99 at low rates too: at least --min-samples of them.
            seconds=max(cfg.open_duration, cfg.min_samples / rate),
            tag=tag,
            seed=cfg.seed + rep * 1000 + rate,
        )
    )
    after = cpu_snapshot(servers.pids)
    cpu = cpu_split(before, after)
    # This process generated the load: its own CPU, not its children's.
    cpu["generator"] = round(data["generator_cpu_s"] / max(0.001, after.at - before.at), 2)
    lat = data["latency_us"]
    run = Run(
        kind=kind,
        servers=count,
        rep=rep,
        tag=tag,
        target_rate=rate,
        seconds=data["elapsed_s"],
        sent=data["sent"],
        ok=data["ok"],
        non_200=data["non_200"],
        errors=data["errors"] + data["dropped"],
        calls_per_s=round(data["ok"] / data["elapsed_s"], 1) if data["elapsed_s"] else 0.0,
        p50_ms=lat["50"] / 1000,
        p90_ms=lat["90"] / 1000,
        p99_ms=lat["99"] / 1000,
        p999_ms=lat["99.9"] / 1000,
        max_ms=lat["100"] / 1000,
        cpu=cpu,
        calm=calm,
        extra={"open": data, "dial": data["dial"], "wall": [wall, time.time()]},
    )
    _check(cfg, servers, run, metrics_before, problems_before)
    return run


def _line(run: Run) -> str:
    rate = f" at {run.target_rate:.0f}/s" if run.kind in {"open", "refresh"} else ""
    return (
        f"{run.kind:6}{rate} servers={run.servers} rep {run.rep}: {run.calls_per_s:7.1f} calls/s"
        f"  p50 {run.p50_ms:7.2f}  p90 {run.p90_ms:7.2f}  p99 {run.p99_ms:7.2f}"
        f"  max {run.max_ms:7.1f} ms  200s {run.ok} stored {run.stored} sent {run.sent}"
        f"  non-200 {run.non_200} errors {run.errors} deferred {run.deferred:.0f}"
        f"  dni {run.dni_share:.1%}  cpu {run.cpu}  load {run.calm['load'][0]}"
    )


# ---------------------------------------------------------------------------- lookups


class StatementLog:
    """Counts (and on request keeps) the statements an engine sends to PostgreSQL, and the
    time spent inside the driver's execute: the round trip, PostgreSQL's work and asyncpg's
    own (BEGIN and COMMIT are not cursor executions and are not counted)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self.inside = 0.0
        self._since = 0.0
        self.keep = False
        self.kept: list[tuple[str, Any]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, _conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        self.count += 1
        if self.keep:
            self.kept.append((statement, params))
        self._since = time.perf_counter()

    def _after(self, *_: Any) -> None:
        self.inside += time.perf_counter() - self._since


class GcPauses:
    """How long the garbage collector stops this process, per generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._since = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._since = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._since) * 1e6)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, Any]:
        """Per generation: collections, and their median and longest pause in ms."""
        return {
            f"gen{g}": {
                "collections": len(v),
                "p50_ms": round(statistics.median(v) / 1000, 3) if v else 0.0,
                "max_ms": round(max(v) / 1000, 3) if v else 0.0,
            }
            for g, v in self.pauses.items()
        }


def _stats(values_us: Sequence[float]) -> dict[str, float]:
    ordered = sorted(round(v) for v in values_us)
    return {
        "n": len(ordered),
        "p50_ms": round(_percentile(ordered, 50) / 1000, 3),
        "p90_ms": round(_percentile(ordered, 90) / 1000, 3),
        "p99_ms": round(_percentile(ordered, 99) / 1000, 3),
        "max_ms": round(ordered[-1] / 1000, 3) if ordered else 0.0,
        "mean_ms": round(statistics.fmean(ordered) / 1000, 3) if ordered else 0.0,
    }


async def _loop_lag_during(work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(seconds `work` took, the longest the event loop was blocked meanwhile, in ms)."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            before = loop.time()
            await asyncio.sleep(0.001)
            worst = max(worst, loop.time() - before - 0.001)

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    done = True
    await tick
    return took, worst * 1000


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


# "Index Scan Backward using ix_lease_number_started on lease", "Seq Scan on pool", ...
_PLAN_SCAN = re.compile(
    r"((?:Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)? using \w+|Seq Scan on \w+)"
)


async def explain(
    engine: AsyncEngine, statements: Sequence[tuple[str, Any]]
) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement with its parameters, in order and in one
    transaction that is rolled back (the INSERT and UPDATE run for real, then vanish); for
    the SELECTs also the generic plan that a prepared statement may switch to."""
    plans: list[dict[str, Any]] = []
    async with engine.connect() as conn:
        trans = await conn.begin()
        for number, (statement, params) in enumerate(statements):
            args = tuple(params or ())
            rows = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", args)
            plan = "\n".join(str(r[0]) for r in rows)
            entry: dict[str, Any] = {
                "statement": " ".join(statement.split()),
                "params": [_literal(a) for a in args],
                "plan": plan,
                "scans": sorted(set(_PLAN_SCAN.findall(plan))),
                "execution_ms": _grab_float(r"Execution Time: ([\d.]+) ms", plan),
            }
            if statement.lstrip().upper().startswith("SELECT"):
                name = f"vb_generic_{number}"
                await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
                await conn.exec_driver_sql(f"PREPARE {name} AS {statement}")
                literals = ", ".join(_literal(a) for a in args)
                call = f"EXECUTE {name}({literals})" if args else f"EXECUTE {name}"
                rows = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {call}")
                generic = "\n".join(str(r[0]) for r in rows)
                await conn.exec_driver_sql(f"DEALLOCATE {name}")
                await conn.exec_driver_sql("SET LOCAL plan_cache_mode = auto")
                entry["generic_plan"] = generic
                entry["generic_scans"] = sorted(set(_PLAN_SCAN.findall(generic)))
                entry["generic_execution_ms"] = _grab_float(r"Execution Time: ([\d.]+) ms", generic)
            plans.append(entry)
        await trans.rollback()
    return plans


def _grab_float(pattern: str, textual: str) -> float:
    match = re.search(pattern, textual)
    return float(match.group(1)) if match else 0.0


async def _time_lookups(
    cfg: Config,
    sessionmaker: async_sessionmaker[AsyncSession],
    log: StatementLog,
    traffic: Traffic,
    rng: random.Random,
) -> dict[str, Any]:
    """route_of, attribute and called_before, each timed, for random calls happening now."""
    samples: dict[str, list[tuple[float, float, int]]] = {}
    route_us: list[float] = []
    for _ in range(cfg.lookups):
        to, caller = pick_call(traffic, rng)
        at = datetime.now(UTC) - timedelta(seconds=rng.uniform(0, 2))
        async with sessionmaker() as db:
            await db.execute(text("SELECT 1"))  # BEGIN and a first round trip
            t0 = time.perf_counter()
            route: NumberRoute | None = await calls_repo.route_of(db, to)
            t1 = time.perf_counter()
            count0 = log.count
            found = await attribute(db, route=route, caller=caller, started_at=at)
            t2 = time.perf_counter()
            statements = log.count - count0
            await calls_repo.called_before(db, caller=caller, before=at)
            t3 = time.perf_counter()
            await db.rollback()
        route_us.append((t1 - t0) * 1e6)
        samples.setdefault(found.method.value, []).append(
            ((t2 - t1) * 1e6, (t3 - t2) * 1e6, statements)
        )
    every = [s for group in samples.values() for s in group]
    return {
        "n": len(every),
        "route_of": _stats(route_us),
        "attribute": _stats([s[0] for s in every]),
        "called_before": _stats([s[1] for s in every]),
        "attribute_plus_first_time": _stats([s[0] + s[1] for s in every]),
        "by_method": {
            method: {
                "share": round(len(group) / len(every), 4),
                "statements": sorted({s[2] for s in group}),
                "attribute": _stats([s[0] for s in group]),
                "called_before": _stats([s[1] for s in group]),
            }
            for method, group in sorted(samples.items())
        },
    }


async def _time_answers(
    cfg: Config,
    desk: CallDesk,
    sessionmaker: async_sessionmaker[AsyncSession],
    log: StatementLog,
    traffic: Traffic,
    rng: random.Random,
    tag: str,
) -> dict[str, Any]:
    """CallDesk.answer for new calls: the webhook's whole database side, BEGIN to COMMIT."""
    answer_us: dict[str, list[float]] = {}
    inside_us: list[float] = []
    statements_per_call: dict[str, set[int]] = {}
    for index in range(max(1, cfg.lookups // 5)):
        to, caller = pick_call(traffic, rng)
        call = inbound_call(f"vb{tag}L{index}", to=to, caller=caller, now=datetime.now(UTC))
        count0, inside0 = log.count, log.inside
        t0 = time.perf_counter()
        await desk.answer(call)
        took = (time.perf_counter() - t0) * 1e6
        statements = log.count - count0
        inside_us.append((log.inside - inside0) * 1e6)
        async with sessionmaker() as db:
            method = await _method_of(db, call.call_id)
        assert method, "the call was not stored"
        answer_us.setdefault(method, []).append(took)
        statements_per_call.setdefault(method, set()).add(statements)
    return {
        "all": _stats([v for group in answer_us.values() for v in group]),
        "inside_driver_execute": _stats(inside_us),
        "by_method": {
            m: {"statements": sorted(statements_per_call[m]), **_stats(v)}
            for m, v in sorted(answer_us.items())
        },
    }


async def lookup_bench(cfg: Config, traffic: Traffic, tag: str) -> dict[str, Any]:
    """The attribution lookup alone, a whole call's database work, and their plans.

    One connection (pool of 1, no HTTP, no concurrency): `attribute()` and
    `calls.called_before()` timed around each call inside an open transaction (BEGIN and
    ROLLBACK not counted) for random numbers and callers at the current time; then
    `CallDesk.answer()` (everything the webhook does in the database, BEGIN to COMMIT)."""
    url = sqlalchemy_url(cfg)
    engine = make_engine(url, pool_size=1)
    log = StatementLog(engine)
    sessionmaker = make_sessionmaker(engine)
    rng = random.Random(cfg.seed)
    result: dict[str, Any] = {}
    try:
        settings = Settings(
            database_url=url,
            provider="cloudonix",
            cloudonix_api_key="XI" + "0" * 32,
            cloudonix_domain=DOMAIN,
            webhook_token=traffic.token,
        )
        desk = CallDesk(
            sessionmaker=sessionmaker,
            settings=settings,
            metrics=Metrics(),
            clock=utc_now,
            provider="cloudonix",
        )
        with GcPauses() as during_refresh:
            refreshes = [await _loop_lag_during(desk.refresh_routes) for _ in range(3)]
        result["routing_refresh"] = {
            "routes": len(desk.routing),
            "seconds": [round(s, 3) for s, _ in refreshes],
            "loop_blocked_ms": [round(b, 1) for _, b in refreshes],
            # The longest stall is a collection: a reload makes 100,000 new objects.
            "gc_meanwhile": during_refresh.summary(),
        }
        _log(f"routing table refresh: {result['routing_refresh']}")

        # The garbage collector meanwhile, with 100,000 routes in memory as in a server.
        with GcPauses() as pauses:
            result["lookups"] = await _time_lookups(cfg, sessionmaker, log, traffic, rng)
            _log(f"lookups: {json.dumps(result['lookups']['attribute'])}")
            result["desk_answer"] = await _time_answers(
                cfg, desk, sessionmaker, log, traffic, rng, tag
            )
            _log(f"desk.answer: {json.dumps(result['desk_answer']['all'])}")
        result["gc"] = {**pauses.summary(), "tracked_objects": len(gc.get_objects())}
        # What one full collection costs a process that holds the routing table; CPython
        # runs one whenever the long-lived objects grew by a quarter (a reload does that).
        full = []
        for _ in range(3):
            started = time.perf_counter()
            gc.collect()
            full.append(round((time.perf_counter() - started) * 1000, 1))
        result["gc"]["full_collection_ms"] = full
        gc.freeze()  # what the same collection costs once the routes are frozen
        frozen = []
        for _ in range(3):
            started = time.perf_counter()
            gc.collect()
            frozen.append(round((time.perf_counter() - started) * 1000, 1))
        result["gc"]["frozen_objects"] = gc.get_freeze_count()
        gc.unfreeze()
        result["gc"]["full_collection_after_freeze_ms"] = frozen
        _log(f"gc: {json.dumps(result['gc'])}")

        # The statements of one new call of each kind, and their plans.
        result["plans"] = {}
        captured: dict[str, tuple[str, list[tuple[str, Any]]]] = {}
        wanted = {"dni", "caller_id", "unattributed"}
        for index in range(2000):
            if not wanted:
                break
            to, caller = pick_call(traffic, rng)
            now = datetime.now(UTC)
            call = inbound_call(f"vb{tag}E{index}", to=to, caller=caller, now=now)
            log.kept = []
            log.keep = True
            async with sessionmaker() as db:
                await desk._record_inbound(db, call)
                await db.flush()
                kept = list(log.kept)
                log.keep = False
                found_method = await _method_of(db, call.call_id)
                await db.rollback()
            if kept and found_method in wanted:
                wanted.discard(found_method)
                result["plans"][found_method] = await explain(engine, kept)
                captured[found_method] = (call.call_id, kept)
        # The floor: the same statements, parameters and transaction on a bare asyncpg
        # connection (prepared statements cached, as SQLAlchemy's adapter does).
        result["raw_asyncpg"] = {
            method: await raw_replay(cfg, call_id, kept, f"vb{tag}R{method[0]}", cfg.lookups // 10)
            for method, (call_id, kept) in sorted(captured.items())
        }
        _log(f"raw asyncpg: {json.dumps(result['raw_asyncpg'])}")
    finally:
        await engine.dispose()
    return result


async def raw_replay(
    cfg: Config, call_id: str, statements: Sequence[tuple[str, Any]], prefix: str, count: int
) -> dict[str, Any]:
    """Run a captured call's statements `count` times with asyncpg alone, BEGIN to COMMIT,
    each time as a new call (the call id replaced); the time per call."""
    dsn = f"postgresql://{cfg.pg_user}@{cfg.pg_host}:{cfg.pg_port}/{cfg.database}"
    conn = await asyncpg.connect(dsn)
    took: list[float] = []
    try:
        for index in range(max(1, count)):
            new_id = f"{prefix}{index}"
            t0 = time.perf_counter()
            async with conn.transaction():
                for statement, params in statements:
                    args = [new_id if a == call_id else a for a in (params or ())]
                    await conn.fetch(statement, *args)
            took.append((time.perf_counter() - t0) * 1e6)
    finally:
        await conn.close()
    return {"statements": len(statements), **_stats(took)}


def inbound_call(call_id: str, *, to: str, caller: str, now: datetime) -> InboundCall:
    """What the webhook hands the desk for a new call (fields the app version lacks, e.g.
    `reported_start`, are left out: the app changes while this benchmark lives)."""
    values: dict[str, Any] = {
        "call_id": call_id,
        "from_number": caller,
        "to_number": to,
        "caller_name": "Bench Caller",
        "direction": "inbound",
        "reported_start": now,
        "received_at": now,
    }
    names = {f.name for f in dataclasses.fields(InboundCall)}
    return InboundCall(**{k: v for k, v in values.items() if k in names})


async def _method_of(db: AsyncSession, call_id: str) -> str:
    stored = await calls_repo.get_by_provider_id(db, provider="cloudonix", call_id=call_id)
    return stored.attribution if stored is not None else ""


# ---------------------------------------------------------------------------- profile

PROFILE_KEYS = (
    "AccessMiddleware.__call__",
    "solve_dependencies",
    "cloudonix_voice (",
    "_fields (",
    "_parse (",
    "_render (",
    "answer (app/services/desk.py",
    "_record_inbound (",
    "normalise (",
    "route_of (",
    "get_by_provider_id (",
    "record (app/services/calls.py",
    "attribute (",
    "lease_at (",
    "_from_session (",
    "latest_session_of_caller (",
    "called_before (",
    "insert_call (",
    "AsyncSession.flush",
    "AsyncSession.commit",
    "AsyncSession.get",
    "async_sessionmaker.__call__",
    "AsyncSession.close",
    "greenlet_spawn",
    "_compile_w_cache",
    "_generate_cache_key",
    "RequestResponseCycle.send",
    "HttpToolsProtocol.data_received",
    "loading.instances",
    "UOWTransaction.execute",
)


def summarise_profile(out: Path) -> None:
    """The event loop thread's samples by frame (inclusive share of key frames, own time)."""
    raw = out.with_suffix(".raw")
    if not raw.exists():
        return
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or stack.startswith("Thread._bootstrap"):
            continue
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return
    idle = sum(n for f, n in own.items() if "select (" in f or f.startswith("Runner.run"))
    lines = [f"event loop thread samples: {total}, idle: {idle / total:.1%}", ""]
    lines.append("inclusive share of key frames:")
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1]):
        if any(key in frame for key in PROFILE_KEYS):
            lines.append(f"  {n / total:6.1%}  {frame}")
    lines += ["", "own (self) time, top 40:"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:40]:
        lines.append(f"  {n / total:6.1%}  {frame}")
    out.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------- summary


def _spread(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def summarise(result: dict[str, Any]) -> str:
    """Markdown tables of a result: medians over the repetitions, and the spread."""
    meta = result["meta"]
    runs = [r for r in result["runs"]]
    lines = [
        f"Run {meta['started']}: {meta['cores']} cores, PostgreSQL {meta['postgres']}, "
        f"app at {meta['git']}{' + uncommitted changes' if meta['app_changes'] else ''}; "
        f"mode {meta['mode']}, {meta['connections']} connections, {meta['duration']} s closed-loop "
        f"runs after {meta['warmup']} s warm-up, {meta['open_duration']} s open-loop runs, "
        f"{meta['repeat']} repetition(s), medians shown.",
        "",
        f"Database: {json.dumps(result['database']['sizes'])}",
        "",
    ]
    head = (
        "| load | servers | calls/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | 200s "
        "| stored | non-200 + errors | deferred | dni | cores srv/pg/gen/other "
        "| server CPU ms/call | PG CPU ms/call | p99 of the runs | load1 before "
        "| gen-2 GCs / longest ms |"
    )
    lines += [
        head,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|---|",
    ]
    groups: dict[tuple[str, str, float, int], list[dict[str, Any]]] = {}
    for r in runs:
        key = (r["kind"], r.get("variant", ""), r["target_rate"], r["servers"])
        groups.setdefault(key, []).append(r)
    order = {"closed": 0, "open": 1, "refresh": 2, "replay": 3}
    for (kind, variant, rate, count), group in sorted(
        groups.items(), key=lambda kv: (kv[0][1], order[kv[0][0]], kv[0][2], kv[0][3])
    ):
        label = {
            "closed": "closed loop, 50 conn",
            "open": f"open loop {rate:.0f}/s",
            "refresh": f"open loop {rate:.0f}/s, routing table reloaded every "
            f"{meta['refresh_every']} s",
            "replay": "replay (same CallSids)",
        }[kind]
        if kind == "closed":
            label = f"closed loop, {meta['connections']} conn"
        if variant:
            label += f" [{variant}]"
        gcs = [r["extra"].get("gc", {}) for r in group]
        longest = max(g.get("gen2_max_ms", 0) for g in gcs)
        gen2 = f"{sum(g.get('gen2', 0) for g in gcs)} / {longest:.0f}"

        def med(key: str, g: list[dict[str, Any]] = group) -> float:
            return _median([r[key] for r in g])

        cpu = "/".join(
            f"{_median([r['cpu'][k] for r in group]):.2f}"
            for k in ("servers", "postgres", "generator", "other")
        )
        lines.append(
            f"| {label} | {count} | {med('calls_per_s'):,.0f} | {med('p50_ms'):.2f} "
            f"| {med('p90_ms'):.2f} | {med('p99_ms'):.2f} | {med('p999_ms'):.2f} "
            f"| {med('max_ms'):.0f} | {sum(r['ok'] for r in group):,} "
            f"| {sum(r['stored'] for r in group):,} "
            f"| {sum(r['non_200'] + r['errors'] for r in group)} "
            f"| {sum(r['deferred'] for r in group):.0f} | {med('dni_share'):.1%} | {cpu} "
            f"| {_median([r['cpu_ms_per_call'].get('servers', 0) for r in group]):.2f} "
            f"| {_median([r['cpu_ms_per_call'].get('postgres', 0) for r in group]):.2f} "
            f"| {_spread([r['p99_ms'] for r in group])} "
            f"| {_spread([r['calm']['load'][0] for r in group], '{:.2f}')} | {gen2} |"
        )
    lookup = result.get("lookup")
    if lookup:
        lk = lookup["lookups"]
        lines += [
            "",
            f"Lookups alone ({lk['n']:,}, one connection, no concurrency):",
            "",
            "| what | p50 ms | p90 ms | p99 ms | max ms | statements |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for name in ("route_of", "attribute", "called_before", "attribute_plus_first_time"):
            s = lk[name]
            lines.append(
                f"| {name} | {s['p50_ms']} | {s['p90_ms']} | {s['p99_ms']} | {s['max_ms']} | |"
            )
        for method, m in lk["by_method"].items():
            s = m["attribute"]
            lines.append(
                f"| attribute -> {method} ({m['share']:.0%}) | {s['p50_ms']} | {s['p90_ms']} "
                f"| {s['p99_ms']} | {s['max_ms']} | {m['statements']} |"
            )
        for method, s in lookup["desk_answer"]["by_method"].items():
            lines.append(
                f"| desk.answer -> {method} (whole call, commit) | {s['p50_ms']} | {s['p90_ms']} "
                f"| {s['p99_ms']} | {s['max_ms']} | {s['statements']} |"
            )
        s = lookup["desk_answer"]["inside_driver_execute"]
        lines.append(
            f"| desk.answer: of which inside the driver's execute | {s['p50_ms']} "
            f"| {s['p90_ms']} | {s['p99_ms']} | {s['max_ms']} | |"
        )
        for method, s in lookup.get("raw_asyncpg", {}).items():
            lines.append(
                f"| raw asyncpg, the same statements -> {method} (commit) | {s['p50_ms']} "
                f"| {s['p90_ms']} | {s['p99_ms']} | {s['max_ms']} | [{s['statements']}] |"
            )
        lines += ["", f"Routing table refresh: {json.dumps(lookup['routing_refresh'])}"]
        lines += ["", f"Garbage collection meanwhile: {json.dumps(lookup.get('gc'))}", ""]
        for method, plans in lookup["plans"].items():
            lines.append(f"Statements of one new call attributed {method}:")
            for p in plans:
                generic = f"; generic: {p.get('generic_scans')}" if "generic_scans" in p else ""
                lines.append(
                    f"- {p['execution_ms']} ms {p['scans']}{generic}: {p['statement'][:150]}"
                )
            lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


PHASES = ("lookup", "closed", "open", "replay", "refresh", "gcfreeze")


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.voice_bench", description=__doc__)
    arg = parser.add_argument
    arg("--servers", type=_ints, default=[1, 2], help="server processes to try")
    arg("--mode", choices=["ports", "workers"], default="ports", help="N ports or --workers N")
    arg("--connections", type=int, default=50, help="closed-loop connections (calls in flight)")
    arg("--duration", type=int, default=25, help="seconds of each closed-loop run")
    arg("--warmup", type=int, default=5, help="seconds of the unmeasured run after each start")
    arg("--rates", type=_ints, default=[50, 100, 200], help="open-loop calls per second")
    arg("--open-duration", type=int, default=20, help="seconds of each open-loop run")
    arg(
        "--min-samples",
        type=int,
        default=1000,
        help="open loop: run long enough for this many calls at the lower rates",
    )
    arg("--repeat", type=int, default=3, help="repetitions of every configuration")
    arg("--no-replay", dest="replay", action="store_false", help="skip the replay runs")
    arg("--replay-set", type=int, default=1000, help="distinct CallSids of the replay runs")
    arg("--lookups", type=int, default=5000, help="attribution lookups timed in-process")
    arg("--phases", default=",".join(PHASES), help=f"which of {','.join(PHASES)} to run")
    arg(
        "--refresh-every",
        type=int,
        default=10,
        help="refresh phase: CALLTRACK_ROUTING_REFRESH_SECONDS of its servers (default 300)",
    )
    arg("--refresh-rate", type=int, default=100, help="refresh phase: open-loop calls/s")
    arg("--freeze-rates", type=_ints, default=[100, 200], help="gcfreeze phase: open loop")
    arg("--profile", type=int, default=0, help="seconds of an extra closed-loop run under py-spy")
    arg(
        "--no-gc-watch",
        dest="gc_watch",
        action="store_false",
        help="start the servers without the garbage collection observer",
    )
    arg("--numbers", type=int, default=100_000)
    arg("--leases-per-number", type=int, default=11, help="past leases of every number")
    arg("--live-share", type=float, default=0.6, help="share of numbers leased right now")
    arg("--past-calls", type=int, default=500_000)
    arg("--repeat-callers", type=int, default=200_000, help="callers of the past calls")
    arg("--repeat-share", type=float, default=0.2, help="share of calls from repeat callers")
    arg("--setup", action="store_true", help="rebuild the database even if it looks right")
    arg("--drop", action="store_true", help="drop the database at the end")
    arg("--db-pool-size", type=int, default=0, help="per process; 0: connections / servers")
    arg("--max-load", type=float, default=1.5, help="wait for this 1-minute load before runs")
    arg("--calm-wait", type=int, default=120, help="the longest wait for calm, seconds")
    arg("--base-port", type=int, default=18200)
    arg("--pg-host", default="127.0.0.1")
    arg("--pg-port", type=int, default=5432)
    arg("--pg-user", default="postgres")
    arg("--database", default="calltrack_voice_bench")
    arg("--results-dir", type=Path, default=BENCH_DIR / "results")
    arg("--seed", type=int, default=20261126)
    ns = parser.parse_args(argv)
    if ns.pg_host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("the benchmark only targets this machine")
    ns.phases = [p for p in ns.phases.split(",") if p]
    if unknown := set(ns.phases) - set(PHASES):
        parser.error(f"unknown phases: {sorted(unknown)}")
    if ns.max_load <= 0 or ns.duration < 1 or ns.repeat < 1 or min(ns.servers, default=0) < 1:
        parser.error("durations, servers and repetitions must be positive")
    if ns.repeat_callers > 790_000:
        parser.error("at most 790,000 repeat callers (+1 646 201..999 XXXX)")
    return Config(**vars(ns))


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO)
    return done.stdout.strip()


def app_state() -> str:
    """The commit and a digest of uncommitted changes under app/ when servers start (other
    people edit the tree while the benchmark runs): 'abc1234' or 'abc1234+<digest>'."""
    diff = _git("diff", "HEAD", "--", "app", "migrations")
    rev = _git("rev-parse", "--short", "HEAD")
    return (
        f"{rev}+{hashlib.sha1(diff.encode(), usedforsecurity=False).hexdigest()[:8]}"
        if diff
        else rev
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Load the database, run every configuration, write the JSON and a Markdown summary."""
    cfg = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    for tool in ("wrk", "psql"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is required (Debian: apt-get install wrk postgresql-client)")
    started = datetime.now(UTC)
    session = "".join(random.Random().choice(string.ascii_lowercase) for _ in range(4))
    meta = {k: v for k, v in asdict(cfg).items() if k != "results_dir"}
    meta.update(
        started=started.isoformat(timespec="seconds"),
        cores=os.cpu_count(),
        postgres=psql(cfg, "SHOW server_version", database="postgres"),
        git=_git("rev-parse", "--short", "HEAD"),
        app_changes=_git("status", "--porcelain", "app", "migrations"),
        load_start=[round(v, 2) for v in os.getloadavg()],
        session=session,
    )
    result: dict[str, Any] = {"meta": meta, "database": {}, "lookup": None, "runs": []}
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    out = cfg.results_dir / f"voice-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    workdir = Path(tempfile.mkdtemp(prefix="calltrack-voice-bench-"))
    counter = [0]

    def tag() -> str:
        counter[0] += 1
        return f"{session}{counter[0]:04d}"

    try:
        result["database"] = prepare_database(cfg)
        token = secrets.token_urlsafe(24)[:32]
        traffic = make_traffic(cfg, workdir, token)
        if "lookup" in cfg.phases:
            result["lookup"] = asyncio.run(lookup_bench(cfg, traffic, tag()))
            out.write_text(json.dumps(result, indent=1, default=str))
        http_phases = {"closed", "open", "replay"} & set(cfg.phases)
        for rep in range(1, cfg.repeat + 1):
            if not http_phases:
                break
            for count in cfg.servers:
                code = app_state()
                with run_servers(cfg, count, token) as servers:
                    run_wrk(cfg, servers, traffic, seconds=cfg.warmup, tag=tag())  # warm-up
                    if "closed" in cfg.phases:
                        run = closed_run(cfg, servers, traffic, count=count, rep=rep, tag=tag())
                        run.extra["app"] = code
                        result["runs"].append(asdict(run))
                    if "open" in cfg.phases:
                        for rate in cfg.rates:
                            run = open_run(
                                cfg, servers, traffic, count=count, rep=rep, tag=tag(), rate=rate
                            )
                            run.extra["app"] = code
                            result["runs"].append(asdict(run))
                    if cfg.replay and "replay" in cfg.phases and count == cfg.servers[0]:
                        replay_tag = tag()
                        # Stores the replay set's calls (a first pass over the set, at
                        # least 10 s); the measured run then only replays.
                        run_wrk(
                            cfg,
                            servers,
                            traffic,
                            seconds=max(10, cfg.warmup),
                            tag=replay_tag,
                            mode="replay",
                        )
                        stored_before = run_counts(cfg, replay_tag)["stored"]
                        run = closed_run(
                            cfg,
                            servers,
                            traffic,
                            count=count,
                            rep=rep,
                            tag=replay_tag,
                            kind="replay",
                        )
                        run.stored = run_counts(cfg, replay_tag)["stored"]
                        # 0 when the warm-up stored the whole set: every request a replay.
                        run.extra["new_calls_during_run"] = run.stored - stored_before
                        run.extra["app"] = code
                        result["runs"].append(asdict(run))
                out.write_text(json.dumps(result, indent=1, default=str))
        if "refresh" in cfg.phases:
            # The routing table reload (every 300 s by default, and after pool changes) made
            # frequent, to see what it does to the calls in flight; 1 server.
            env = {"CALLTRACK_ROUTING_REFRESH_SECONDS": str(cfg.refresh_every)}
            for rep in range(1, cfg.repeat + 1):
                code = app_state()
                with run_servers(cfg, 1, token, env) as servers:
                    run_wrk(cfg, servers, traffic, seconds=cfg.warmup, tag=tag())
                    run = open_run(
                        cfg,
                        servers,
                        traffic,
                        count=1,
                        rep=rep,
                        tag=tag(),
                        rate=cfg.refresh_rate,
                        kind="refresh",
                    )
                    run.extra["app"] = code
                    result["runs"].append(asdict(run))
                out.write_text(json.dumps(result, indent=1, default=str))
        if "gcfreeze" in cfg.phases:
            # 1 server as is, then with gc.freeze() 6 s after start (after the routing table
            # load), in turns: closed loop and open loop at --freeze-rates.
            for rep in range(1, cfg.repeat + 1):
                for variant in ("", "gcfreeze"):
                    env = {"VB_GC_FREEZE_AFTER": "6"} if variant else {}
                    code = app_state()
                    with run_servers(cfg, 1, token, env) as servers:
                        time.sleep(6)
                        run_wrk(cfg, servers, traffic, seconds=cfg.warmup, tag=tag())
                        runs = [closed_run(cfg, servers, traffic, count=1, rep=rep, tag=tag())]
                        runs += [
                            open_run(cfg, servers, traffic, count=1, rep=rep, tag=tag(), rate=rate)
                            for rate in cfg.freeze_rates
                        ]
                    for run in runs:
                        run.variant = variant or "as is"
                        run.extra["app"] = code
                        result["runs"].append(asdict(run))
                out.write_text(json.dumps(result, indent=1, default=str))
        if cfg.profile:
            with run_servers(cfg, 1, token) as servers:
                run_wrk(cfg, servers, traffic, seconds=cfg.warmup, tag=tag())
                profile = cfg.results_dir / f"profile-voice-{started.strftime('%H%M%S')}.txt"
                data = run_wrk(
                    cfg, servers, traffic, seconds=cfg.profile, tag=tag(), profile_to=profile
                )
                result["profile"] = {"file": str(profile), "wrk": data}
                _log(f"profile: {profile}")
        result["database"]["sizes_end"] = db_sizes(cfg)
    finally:
        meta["load_end"] = [round(v, 2) for v in os.getloadavg()]
        meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        meta["app_changes_end"] = _git("status", "--porcelain", "app", "migrations")
        out.write_text(json.dumps(result, indent=1, default=str))
        shutil.rmtree(workdir, ignore_errors=True)
        if cfg.drop:
            psql(cfg, f'DROP DATABASE IF EXISTS "{cfg.database}" WITH (FORCE)', database="postgres")
            _log(f"dropped {cfg.database}")
        _log(f"results: {out}")
    print(summarise(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
