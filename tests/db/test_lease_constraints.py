"""The lease rule in the database: the schema refuses overlaps, concurrent claims never share.

No HTTP here: the repository's claim is raced directly, from many transactions of one event
loop and from several OS threads each with its own loop and engine.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.models import Lease
from app.db.repositories import leases
from app.db.repositories import sessions as visitor_sessions
from app.db.repositories.leases import Held
from app.db.session import make_engine, make_sessionmaker
from app.services import pools
from tests.api.helpers import DESTINATION, FALLBACK, numbers
from tests.support import BACKENDS, Templates

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)
UNTIL = NOW + timedelta(minutes=30)
AVAILABLE_AT = UNTIL + timedelta(minutes=15)
POOL_SIZE = 10
TASKS = 64  # claims racing on one engine
# Connections one race may open. PostgreSQL allows 100 clients in all, shared with other
# test runs and benchmarks on the machine, so a race keeps well below that.
CONNECTIONS = 32
THREADS = 4
CLAIMS_PER_THREAD = 16
RACE_SECONDS = 30.0
EXCLUSION_VIOLATION = "23P01"  # PostgreSQL's SQLSTATE for an exclusion constraint

Claims = list[tuple[str, Held | None]]


@pytest.fixture
def pg_database(templates: Templates) -> Iterator[str]:
    """A fresh migrated PostgreSQL database (the exclusion constraint exists only there)."""
    if "postgresql" not in BACKENDS:
        pytest.skip("postgresql is not in CALLTRACK_TEST_BACKENDS")
    url, handle = templates.fresh("postgresql")
    yield url
    templates.dispose("postgresql", handle)


async def seed(url: str, *, visitors: int) -> tuple[int, list[int], list[str]]:
    """A pool of POOL_SIZE free numbers and `visitors` sessions: (pool id, number ids, sids)."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            pool = await pools.create(
                db,
                name="default",
                destination=DESTINATION,
                fallback_number=FALLBACK,
                lease_ttl_seconds=1800,
                cooldown_seconds=900,
                region="US",
                now=T0,
            )
            await pools.add_numbers(
                db, name="default", raw_numbers=numbers(POOL_SIZE), region="US", now=T0
            )
            sids = [f"race-{i:04d}" for i in range(visitors)]
            for sid in sids:
                await visitor_sessions.create(
                    db, session_id=sid, now=T0, site_key_id=None, fields={}
                )
            rows = await db.execute(
                text("SELECT id FROM tracking_number WHERE pool_id = :p ORDER BY id"),
                {"p": pool.id},
            )
            number_ids = [int(r[0]) for r in rows]
            await db.commit()
            return pool.id, number_ids, sids
    finally:
        await engine.dispose()


async def claim_once(
    maker: async_sessionmaker[AsyncSession],
    *,
    pool_id: int,
    session_id: str,
    start: asyncio.Barrier,
    before_commit: asyncio.Barrier | None = None,
) -> tuple[str, Held | None]:
    """One visitor's transaction: claim a number of the pool, then commit."""
    await start.wait()
    async with maker() as db:
        held = await leases.claim(
            db,
            pool_id=pool_id,
            session_id=session_id,
            now=NOW,
            until=UNTIL,
            available_at=AVAILABLE_AT,
        )
        if before_commit is not None:
            await before_commit.wait()
        await db.commit()
    return session_id, held


async def recorded(url: str, pool_id: int) -> dict[str, list[tuple[str, int]]]:
    """What the database holds after a race: lease history, current holders, overlaps."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:

            async def pairs(sql: str) -> list[tuple[str, int]]:
                rows = await conn.execute(text(sql), {"p": pool_id})
                return sorted((str(r[0]), int(r[1])) for r in rows)

            return {
                "leases": await pairs("SELECT session_id, number_id FROM lease WHERE pool_id = :p"),
                "holders": await pairs(
                    "SELECT leased_session_id, id FROM tracking_number"
                    " WHERE pool_id = :p AND leased_session_id IS NOT NULL"
                ),
                # Timestamps compare as text on SQLite: UTCDateTime stores a fixed-width form.
                "overlaps": await pairs(
                    "SELECT a.session_id, b.id FROM lease a JOIN lease b"
                    " ON a.number_id = b.number_id AND a.id < b.id"
                    " AND a.started_at < b.ends_at AND b.started_at < a.ends_at"
                    " WHERE a.pool_id = :p"
                ),
            }
    finally:
        await engine.dispose()


async def assert_each_number_once(
    url: str, pool_id: int, number_ids: list[int], claims: Claims
) -> None:
    """Exactly the pool's numbers were won, each by one claim, and the database agrees."""
    won = sorted((sid, held.number_id) for sid, held in claims if held is not None)
    assert len(won) == POOL_SIZE, f"{len(won)} of {len(claims)} claims won a number"
    assert sorted(n for _, n in won) == number_ids  # each number once, all of them
    assert len({sid for sid, _ in won}) == POOL_SIZE
    state = await recorded(url, pool_id)
    assert state["leases"] == won
    assert state["holders"] == won
    assert state["overlaps"] == []


def lease_row(number_id: int, pool_id: int, sid: str, start: datetime, end: datetime) -> Lease:
    """A lease history row, written directly (bypassing the claim)."""
    return Lease(
        number_id=number_id, pool_id=pool_id, session_id=sid, started_at=start, ends_at=end
    )


async def test_overlapping_leases_of_one_number_are_refused(pg_database: str) -> None:
    pool_id, (number, _, *_), (a, b) = await seed(pg_database, visitors=2)
    engine = make_engine(pg_database)
    try:
        async with make_sessionmaker(engine)() as db:
            db.add(lease_row(number, pool_id, a, T0, T0 + timedelta(minutes=10)))
            await db.commit()
            db.add(
                lease_row(number, pool_id, b, T0 + timedelta(minutes=5), T0 + timedelta(hours=1))
            )
            with pytest.raises(IntegrityError) as refused:
                await db.commit()
            assert "ex_lease_number_no_overlap" in str(refused.value)
            assert getattr(refused.value.orig, "sqlstate", None) == EXCLUSION_VIOLATION
            await db.rollback()
            # A lease inside another one is an overlap too.
            db.add(
                lease_row(number, pool_id, b, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))
            )
            with pytest.raises(IntegrityError, match="ex_lease_number_no_overlap"):
                await db.commit()
            await db.rollback()
            count = await db.scalar(text("SELECT count(*) FROM lease"))
            assert count == 1
    finally:
        await engine.dispose()


async def test_adjacent_leases_and_other_numbers_are_accepted(pg_database: str) -> None:
    pool_id, (n1, n2, *_), (a, b) = await seed(pg_database, visitors=2)
    mid = T0 + timedelta(minutes=10)
    engine = make_engine(pg_database)
    try:
        async with make_sessionmaker(engine)() as db:
            # [T0, mid) then [mid, later): ranges are half-open, so they only touch.
            db.add(lease_row(n1, pool_id, a, T0, mid))
            db.add(lease_row(n1, pool_id, b, mid, mid + timedelta(minutes=10)))
            # The same time span on another number is no conflict.
            db.add(lease_row(n2, pool_id, b, T0, mid))
            await db.commit()
            count = await db.scalar(text("SELECT count(*) FROM lease"))
            assert count == 3
    finally:
        await engine.dispose()


async def test_constraint_stops_a_claim_the_number_row_wrongly_allows(pg_database: str) -> None:
    # If the number's row ever said "free" while a lease of it is live (a bug in the claim
    # or a hand edit), the schema still refuses the second lease.
    pool_id, number_ids, (a, b) = await seed(pg_database, visitors=2)
    engine = make_engine(pg_database)
    try:
        maker = make_sessionmaker(engine)
        async with maker() as db:
            for number in number_ids:  # every number has a live lease in the history...
                db.add(lease_row(number, pool_id, a, T0, UNTIL))
            await db.commit()  # ...yet every tracking_number row still says free
        async with maker() as db:
            with pytest.raises(IntegrityError, match="ex_lease_number_no_overlap"):
                await leases.claim(
                    db,
                    pool_id=pool_id,
                    session_id=b,
                    now=NOW,
                    until=UNTIL,
                    available_at=AVAILABLE_AT,
                )
    finally:
        await engine.dispose()


async def race(url: str, *, tasks: int, hold_open: bool) -> None:
    """`tasks` claims at once on one engine, each in its own transaction; check the outcome."""
    pool_id, number_ids, sids = await seed(url, visitors=tasks)
    # Half pooled, half overflow: CONNECTIONS at most (SQLite's engine keeps its own pool).
    engine = make_engine(url, pool_size=CONNECTIONS // 2)
    try:
        maker = make_sessionmaker(engine)
        start = asyncio.Barrier(tasks)
        before_commit = asyncio.Barrier(tasks) if hold_open else None
        # A claim that waited on another's lock would stall the barrier: the timeout says so.
        async with asyncio.timeout(RACE_SECONDS):
            claims = await asyncio.gather(
                *(
                    claim_once(
                        maker,
                        pool_id=pool_id,
                        session_id=sid,
                        start=start,
                        before_commit=before_commit,
                    )
                    for sid in sids
                )
            )
    finally:
        await engine.dispose()
    await assert_each_number_once(url, pool_id, number_ids, claims)


async def test_concurrent_claims_take_each_number_once(database_url: str) -> None:
    await race(database_url, tasks=TASKS, hold_open=False)


async def test_claims_open_together_skip_each_others_numbers(pg_database: str) -> None:
    # Every claim is made while all the other transactions are still open (they commit only
    # after the last claim), so each meets rows the others locked and must skip them without
    # waiting. One connection per transaction; SQLite, with one writer, cannot do this.
    await race(pg_database, tasks=CONNECTIONS, hold_open=True)


async def _thread_claims(
    url: str, pool_id: int, sids: list[str], ready: threading.Barrier
) -> Claims:
    """One thread's share of the race, on its own event loop and engine."""
    # Half pooled, half overflow: the threads together open CONNECTIONS at most.
    pooled = CONNECTIONS // THREADS // 2
    engine = make_engine(url, pool_size=pooled)
    try:
        maker = make_sessionmaker(engine)
        # Connect first so that the threads' claims, not their connects, start together.
        async with asyncio.timeout(RACE_SECONDS):
            await asyncio.gather(*(_ping(engine) for _ in range(pooled)))
            await asyncio.to_thread(ready.wait, RACE_SECONDS)
            start = asyncio.Barrier(len(sids))
            return list(
                await asyncio.gather(
                    *(claim_once(maker, pool_id=pool_id, session_id=s, start=start) for s in sids)
                )
            )
    finally:
        await engine.dispose()


async def _ping(engine: AsyncEngine) -> None:
    """Open (and pool) one connection."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def test_claims_from_threads_take_each_number_once(database_url: str) -> None:
    pool_id, number_ids, sids = await seed(database_url, visitors=THREADS * CLAIMS_PER_THREAD)
    ready = threading.Barrier(THREADS)
    results: list[Claims] = []
    errors: list[BaseException] = []

    def run(share: list[str]) -> None:
        try:
            results.append(asyncio.run(_thread_claims(database_url, pool_id, share, ready)))
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)
            ready.abort()  # let the other threads fail fast instead of waiting

    threads = [
        threading.Thread(target=run, args=(sids[i::THREADS],), name=f"claims-{i}", daemon=True)
        for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    # The threads block; join them off the loop so that this test's loop stays responsive.
    for thread in threads:
        await asyncio.to_thread(thread.join, RACE_SECONDS * 2)
    assert not [t.name for t in threads if t.is_alive()]
    if errors:
        raise errors[0]
    assert len(results) == THREADS
    claims = [claim for share in results for claim in share]
    assert len(claims) == THREADS * CLAIMS_PER_THREAD
    await assert_each_number_once(database_url, pool_id, number_ids, claims)
