"""A realistic fortnight of a small business's calls and media spend, for the browser test
and the README's screenshot: seeded, so the same figures come out on every run."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Call, Lease, MediaSpend, VisitorSession

# source: medium, campaigns, and the fewest and most calls a day
SOURCES: dict[str, tuple[str, tuple[str | None, ...], int, int]] = {
    "google": ("cpc", ("brand-search", "emergency-repairs"), 4, 10),
    "facebook": ("paid-social", ("spring-promo",), 1, 5),
    "bing": ("cpc", ("brand-search",), 0, 3),
    "newsletter": ("email", ("march-issue",), 0, 2),
    "(direct)": ("(none)", (None,), 1, 3),
}
# (source, medium, campaign): the least and most spent a day, in dollars
SPEND = {
    ("google", "cpc", "brand-search"): (35, 55),
    ("google", "cpc", "emergency-repairs"): (90, 140),
    ("bing", "cpc", "brand-search"): (12, 25),
    ("facebook", "paid-social", "spring-promo"): (30, 48),
    ("bing", "cpc", "retargeting"): (8, 12),  # bought, never rang
}
LEASE = timedelta(minutes=30)


@dataclass
class Built:
    """What was written, as the dashboard should count it (UTC days, 0 = the first)."""

    by_day_source: Counter[tuple[int, str]] = field(default_factory=Counter)
    answered: Counter[int] = field(default_factory=Counter)
    missed: Counter[int] = field(default_factory=Counter)
    callers: list[str] = field(default_factory=list)
    campaigns: set[str] = field(default_factory=set)


def _call_time(rng: random.Random, day: datetime, now: datetime) -> datetime | None:
    # Office hours, busiest around midday; none in the future.
    hour = min(max(rng.gauss(12, 2.5), 8), 19.5)
    at = day + timedelta(hours=hour, minutes=rng.randint(0, 29))
    return at if at < now - LEASE else None


async def build(
    db: AsyncSession,
    *,
    now: datetime,
    days: int,
    pool_id: int,
    numbers: list[tuple[int, str]],
    seed: int = 7,
) -> Built:
    """Write `days` UTC days of calls (today's up to now), their leases and the spend."""
    rng = random.Random(seed)
    built = Built()
    first = datetime.combine(now.date() - timedelta(days=days - 1), time(), tzinfo=UTC)
    free_at = {number_id: first - LEASE for number_id, _ in numbers}
    plans: list[tuple[datetime, int, str]] = []
    for day in range(days):
        start = first + timedelta(days=day)
        for source, (_medium, _campaigns, low, high) in SOURCES.items():
            for _ in range(rng.randint(low, high)):
                at = _call_time(rng, start, now)
                if at is not None:
                    plans.append((at, day, source))
        for (bought, medium, named), (low, high) in SPEND.items():
            db.add(_spend(start, bought, medium, named, rng.randint(low * 100, high * 100)))
    visits: list[VisitorSession] = []
    leases: list[Lease] = []
    calls: list[Call] = []
    for index, (at, day, source) in enumerate(sorted(plans)):
        medium, campaigns, _, _ = SOURCES[source]
        campaign = rng.choice(campaigns)
        caller = f"+1617555{rng.randint(1000, 9999)}"
        answered = rng.random() < 0.82
        talk = rng.randint(25, 420) if answered else 0
        lease_start = at - timedelta(minutes=rng.randint(1, 12))
        # A number is leased again only once its last lease ended (PostgreSQL enforces it).
        free = [n for n in numbers if free_at[n[0]] <= lease_start]
        number_id, e164 = free[0] if free else numbers[0]
        session = f"history-{seed}-{index:05d}-000000"
        visits.append(_visit(session, lease_start, source, medium, campaign))
        if free:
            free_at[number_id] = lease_start + LEASE
            leases.append(
                Lease(
                    number_id=number_id,
                    pool_id=pool_id,
                    session_id=session,
                    started_at=lease_start,
                    ends_at=lease_start + LEASE,
                )
            )
        calls.append(
            Call(
                provider="cloudonix",
                provider_call_id=f"history-{seed}-{index}",
                direction="inbound",
                from_number=caller,
                to_number=e164,
                number_id=number_id,
                pool_id=pool_id,
                session_id=session,
                attribution="dni" if free else "caller_id",
                first_time=rng.random() < 0.7,
                source=source,
                medium=medium,
                campaign=campaign,
                status="completed",
                dial_status="ANSWER" if answered else "NOANSWER",
                started_at=at,
                answered_at=at + timedelta(seconds=8) if answered else None,
                ended_at=at + timedelta(seconds=talk + 20),
                duration_seconds=talk + 20,
                talk_seconds=talk,
                created_at=at,
                updated_at=at,
            )
        )
        built.by_day_source[(day, source)] += 1
        (built.answered if answered else built.missed)[day] += 1
        built.callers.append(caller)
        if campaign:
            built.campaigns.add(campaign)
    # Parents first: the tables have foreign keys but the models no relationships to order by.
    for batch in (visits, leases, calls):
        db.add_all(batch)
        await db.flush()
    return built


def _visit(
    session: str, at: datetime, source: str, medium: str, campaign: str | None
) -> VisitorSession:
    return VisitorSession(
        id=session,
        created_at=at,
        last_seen_at=at,
        landing_url="https://plumbing.example/",
        source=source,
        medium=medium,
        campaign=campaign,
        landing_page="plumbing.example/",
    )


def _spend(day: datetime, source: str, medium: str, campaign: str, cents: int) -> MediaSpend:
    return MediaSpend(
        day=day.date(),
        source=source,
        medium=medium,
        campaign=campaign,
        cost_micros=cents * 10_000,
        currency="USD",
        created_at=day,
        updated_at=day,
    )
