"""How long the attribution report takes on a large history, on PostgreSQL and SQLite.

A fresh database per backend, migrated, then filled by SQL (set-based inserts, so that
building it takes seconds): N visits spread evenly over 90 days (10 sources x 4 campaigns,
50 landing pages), one lease per visit on 200 numbers of two pools, a call for every
fifth visit (a fifth of them unanswered), a callback for every fiftieth, and a spend row
per day and campaign. Then, for a 30-day and a 90-day report and each `group_by`, the
service's own `reports.attribution` is timed in process (no HTTP), median of R runs after
one warm-up; and on PostgreSQL the plan of each aggregate is checked for index use.

python -m bench.report_bench [--visits 200000] [--runs 5] [--backends postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import migrate
from app.db.repositories.reports import Dimension
from app.db.session import make_engine, make_sessionmaker
from app.services import reports
from bench.common import keep_result, log, median, wait_calm

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 8, 1, tzinfo=UTC)
DAYS = 90
GROUPS: tuple[Dimension, ...] = ("source", "medium", "campaign", "landing_page", "pool")
NUMBERS = 200

# One statement per table; {n} visits, {step} seconds apart. Written once for both
# databases: the only differences (the epoch arithmetic, the id casts) are filled in.
FILL = """
INSERT INTO pool (id, name, destination, fallback_number, lease_ttl_seconds,
  cooldown_seconds, match_window_seconds, whisper, record_calls, agents, created_at,
  updated_at)
VALUES (1, 'main', '+12125550100', '+12125550100', 1800, 900, 900, false, false, '[]', {t0},
  {t0}),
       (2, 'brand', '+12125550100', '+12125550100', 1800, 900, 900, false, false, '[]', {t0},
  {t0});
INSERT INTO tracking_number (id, pool_id, e164, active, available_at, created_at)
SELECT n, 1 + n % 2, '+1256555' || {pad4}, true, {t0}, {t0} FROM ({seq_numbers}) AS s;
INSERT INTO visitor_session (id, created_at, last_seen_at, utm_source, utm_medium,
  utm_campaign, landing_url, source, medium, campaign, landing_page)
SELECT 'visit-' || n, {ts}, {ts}, 'src' || (n % 10), 'cpc', 'camp' || (n % 4),
  'https://shop.example/p' || (n % 50) || '?utm_source=x', 'src' || (n % 10), 'cpc',
  'camp' || (n % 4), 'https://shop.example/p' || (n % 50)
FROM ({seq_visits}) AS s;
INSERT INTO lease (id, number_id, pool_id, session_id, started_at, ends_at)
SELECT n, 1 + n % {numbers}, 1 + (1 + n % {numbers}) % 2, 'visit-' || n, {ts}, {ts_end}
FROM ({seq_visits}) AS s;
INSERT INTO call (id, provider, provider_call_id, direction, from_number, to_number,
  pool_id, session_id, attribution, first_time, source, medium, campaign, status,
  started_at, answered_at, talk_seconds, created_at, updated_at)
SELECT n, 'cloudonix', 'c' || n, 'inbound', '+1617555' || {pad4}, '+12565550101',
  1 + (1 + n % {numbers}) % 2, 'visit-' || n, 'dni', n % 3 <> 0, 'src' || (n % 10), 'cpc',
  'camp' || (n % 4), 'completed', {ts}, CASE WHEN n % 25 = 0 THEN NULL ELSE {ts} END,
  CASE WHEN n % 25 = 0 THEN 0 ELSE 30 + n % 300 END, {ts}, {ts}
FROM ({seq_visits}) AS s WHERE n % 5 = 0;
INSERT INTO callback_request (id, pool_id, session_id, phone, status, attempts, agent_index,
  next_attempt_at, scheduled_for, expires_at, created_at, updated_at)
SELECT 'cb_' || n, 1, 'visit-' || n, '+12127770000', CASE WHEN n % 100 = 0 THEN 'completed'
  ELSE 'failed' END, 1, 0, {ts}, {ts}, {ts}, {ts}, {ts}
FROM ({seq_visits}) AS s WHERE n % 50 = 0;
INSERT INTO media_spend (day, source, medium, campaign, cost_micros, currency, created_at,
  updated_at)
SELECT {day}, 'src' || (n % 10), 'cpc', 'camp' || (n / 10 % 4), 1000000 * (5 + n % 40),
  'USD', {t0}, {t0}
FROM ({seq_spend}) AS s;
"""


def _seq(dialect: str, count: int) -> str:
    if dialect == "postgresql":
        return f"SELECT generate_series(1, {count}) AS n"
    return (
        f"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {count})"
        " SELECT n FROM seq"
    )


def fill_sql(dialect: str, visits: int) -> list[str]:
    """The fill statements for this database."""
    step = DAYS * 86400 / visits
    if dialect == "postgresql":
        t0 = "TIMESTAMPTZ '2026-08-01 00:00:00+00'"
        ts = f"({t0} + n * interval '{step} seconds')"
        ts_end = f"({ts} + interval '25 minutes')"
        day = "(DATE '2026-08-01' + n / 40)"
        pad4 = "lpad((n % 10000)::text, 4, '0')"
    else:
        # UTCDateTime stores naive UTC text on SQLite: 'YYYY-MM-DD HH:MM:SS.ffffff'.
        t0 = "'2026-08-01 00:00:00.000000'"
        ts = f"strftime('%Y-%m-%d %H:%M:%f000', '2026-08-01', '+' || (n * {step}) || ' seconds')"
        ts_end = (
            f"strftime('%Y-%m-%d %H:%M:%f000', '2026-08-01', '+' || (n * {step} + 1500)"
            " || ' seconds')"
        )
        day = "date('2026-08-01', '+' || (n / 40) || ' days')"
        pad4 = "substr('0000' || (n % 10000), -4)"
    sql = FILL.format(
        t0=t0,
        ts=ts,
        ts_end=ts_end,
        day=day,
        pad4=pad4,
        numbers=NUMBERS,
        seq_numbers=_seq(dialect, NUMBERS),
        seq_visits=_seq(dialect, visits),
        seq_spend=_seq(dialect, DAYS * 40 - 1),
    )
    return [s.strip() for s in sql.split(";") if s.strip()]


async def build(engine: AsyncEngine, dialect: str, visits: int) -> float:
    """Fill the database; seconds taken."""
    started = time.perf_counter()
    async with engine.begin() as conn:
        for statement in fill_sql(dialect, visits):
            await conn.execute(text(statement))
        if dialect == "postgresql":
            await conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


async def time_reports(engine: AsyncEngine, runs: int) -> dict[str, Any]:
    """Median seconds per report, for 30 and 90 days and each group_by."""
    sessionmaker = make_sessionmaker(engine)
    periods = {
        "30d": (date(2026, 9, 1), date(2026, 9, 30)),
        "90d": (date(2026, 8, 1), date(2026, 10, 29)),
    }
    results: dict[str, Any] = {}
    for label, (first, last) in periods.items():
        for dimension in GROUPS:
            samples = []
            for attempt in range(runs + 1):
                async with sessionmaker() as db:
                    started = time.perf_counter()
                    found = await reports.attribution(
                        db,
                        first=first,
                        last=last,
                        tz_name="UTC",
                        dimension=dimension,
                        currency=None,
                    )
                    elapsed = time.perf_counter() - started
                if attempt:  # the first run warms caches and the plan
                    samples.append(elapsed)
            results[f"{label}.{dimension}"] = {
                "median_ms": round(median(samples) * 1000, 1),
                "groups": len(found.rows),
                "calls": found.totals.calls.calls,
            }
            log(f"{label} {dimension}: {results[f'{label}.{dimension}']}")
    return results


async def plans(engine: AsyncEngine) -> dict[str, str]:
    """PostgreSQL: the access path of each table in a 30-day source report's queries."""
    checks = {
        "visitor_session": "SELECT source, count(*) FROM visitor_session WHERE created_at >= "
        "'2026-09-01' AND created_at < '2026-10-01' GROUP BY source",
        "lease": "SELECT s.source, count(*) FROM lease l JOIN visitor_session s ON s.id = "
        "l.session_id WHERE l.started_at >= '2026-09-01' AND l.started_at < '2026-10-01' "
        "GROUP BY s.source",
        "call": "SELECT source, count(*) FROM call WHERE started_at >= '2026-09-01' AND "
        "started_at < '2026-10-01' GROUP BY source",
        "callback_request": "SELECT count(*) FROM callback_request WHERE created_at >= "
        "'2026-09-01' AND created_at < '2026-10-01'",
    }
    found = {}
    async with engine.connect() as conn:
        for table, sql in checks.items():
            rows = (await conn.execute(text("EXPLAIN " + sql))).scalars().all()
            found[table] = " | ".join(r.strip() for r in rows if "Scan" in r)
    return found


def prepare(backend: str, workdir: str) -> str:
    """A fresh, migrated database for the backend; its URL."""
    if backend == "postgresql":
        name = "ct_bench_reports"
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc",
             f"DROP DATABASE IF EXISTS {name}"],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc",
             f"CREATE DATABASE {name}"],
            check=True, capture_output=True,
        )  # fmt: skip
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    else:
        url = f"sqlite+aiosqlite:///{workdir}/reports.db"
    migrate.upgrade(url)
    return url


async def measure(url: str, backend: str, visits: int, runs: int) -> dict[str, Any]:
    """Fill the database, then time the reports (and read the plans on PostgreSQL)."""
    engine = make_engine(url)
    try:
        built = await build(engine, backend, visits)
        log(f"{backend}: {visits} visits built in {built:.1f} s")
        result: dict[str, Any] = {"build_s": round(built, 1)}
        result["reports"] = await time_reports(engine, runs)
        if backend == "postgresql":
            result["plans"] = await plans(engine)
        return result
    finally:
        await engine.dispose()


def main() -> None:
    """Parse arguments, wait for a calm machine, measure, print and keep the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--calm-wait", type=float, default=120.0)
    args = parser.parse_args()
    calm = wait_calm(args.max_load, args.calm_wait, pause=1.0)
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for backend in args.backends.split(","):
            url = prepare(backend, workdir)
            results[backend] = asyncio.run(measure(url, backend, args.visits, args.runs))
    record = {"visits": args.visits, "runs": args.runs, "calm": calm, "results": results}
    keep_result("reports", record)


if __name__ == "__main__":
    main()
