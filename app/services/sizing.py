"""Pool sizing: how many numbers a pool needs, from the traffic it saw (Little's law)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Pool
from app.db.repositories import fallbacks, leases
from app.services import pools

# The average may keep this share of the pool busy; the rest absorbs bursts.
TARGET_UTILISATION = Fraction(3, 4)


@dataclass(frozen=True)
class Sizing:
    """A pool's observed demand over a window ending now, and the size it calls for."""

    since: datetime
    until: datetime
    size: int
    leases_started: int
    arrivals_per_hour: float
    mean_hold_seconds: float
    mean_lease_seconds: float
    average_busy_numbers: float
    turned_away_visits: int
    average_demand_numbers: float
    target_utilisation: float
    recommended_size: int
    add_numbers: int
    peak_concurrent_leases: int
    fallbacks_total: int
    fallbacks_by_reason: dict[str, int]
    fallback_rate: float


async def size(db: AsyncSession, *, pool: Pool, window_seconds: int, now: datetime) -> Sizing:
    """Measure the pool over the window ending now and recommend its size.

    Little's law: numbers unavailable on average L = arrival rate x hold time, where a lease
    holds its number from its start to its end (or now, if it still runs) and then for the
    pool's cooldown. The recommendation is ceil(L / target utilisation), never below the most
    leases held at once in the window, and at least 1 once any lease began.
    """
    measured = await pools.stats(db, pool=pool, window_seconds=window_seconds, now=now)
    since, until = pools.window(window_seconds, now)
    held = await leases.held_seconds(db, pool_id=pool.id, since=since, until=until, now=now)
    started = measured.leases_started
    # Exact arithmetic on whole milliseconds (SQLite's timestamp precision in SQL), so that
    # an average exactly at the target does not round up to one more number.
    held_ms = round(held * 1000) if started else 0
    busy = Fraction(held_ms + started * pool.cooldown_seconds * 1000, window_seconds * 1000)
    unserved = await fallbacks.turned_away(db, pool_id=pool.id, since=since, until=until)
    hold_ms = (
        Fraction(held_ms, started) + pool.cooldown_seconds * 1000
        if started
        else Fraction((pool.lease_ttl_seconds + pool.cooldown_seconds) * 1000)
    )
    demand = busy + Fraction(unserved) * hold_ms / (window_seconds * 1000)
    needed = math.ceil(demand / TARGET_UTILISATION)
    recommended = max(needed, measured.peak_concurrent, 1 if started or unserved else 0)
    mean_lease = held_ms / 1000 / started if started else 0.0
    fallbacks_total = sum(measured.fallbacks_by_reason.values())
    answers = fallbacks_total + started
    return Sizing(
        since=measured.since,
        until=measured.until,
        size=measured.size,
        leases_started=started,
        arrivals_per_hour=round(started * 3600 / window_seconds, 4),
        mean_hold_seconds=round(mean_lease + pool.cooldown_seconds, 3) if started else 0.0,
        mean_lease_seconds=round(mean_lease, 3),
        average_busy_numbers=round(float(busy), 4),
        turned_away_visits=unserved,
        average_demand_numbers=round(float(demand), 4),
        target_utilisation=float(TARGET_UTILISATION),
        recommended_size=recommended,
        add_numbers=max(0, recommended - measured.size),
        peak_concurrent_leases=measured.peak_concurrent,
        fallbacks_total=fallbacks_total,
        fallbacks_by_reason=measured.fallbacks_by_reason,
        fallback_rate=round(fallbacks_total / answers, 4) if answers else 0.0,
    )
