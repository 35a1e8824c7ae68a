"""A small, fully known history to check the reports against figures worked out by hand.

Seven visits, six leases, seven calls, three callbacks and seven spend rows around the
report period 2026-11-10..2026-11-14. The expected figures live in the tests.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    Call,
    CallbackRequest,
    Lease,
    MediaSpend,
    Pool,
    TrackingNumber,
    VisitorSession,
)
from app.services.marketing import derived


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A UTC instant in November 2026."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


SESSIONS: dict[str, dict[str, Any]] = {
    # id: (created, context)
    "S1": {"created": at(10, 10), "utm_source": "google", "utm_medium": "cpc",
           "utm_campaign": "spring", "landing_url": "https://shop.example/a?x=1"},
    "S2": {"created": at(10, 11), "utm_source": "google", "utm_medium": "cpc",
           "utm_campaign": "spring", "landing_url": "https://shop.example/b"},
    "S3": {"created": at(11, 9), "gclid": "CjwKCA", "landing_url": "https://shop.example/a"},
    "S4": {"created": at(12, 15), "utm_source": "bing", "utm_medium": "cpc",
           "utm_campaign": "autumn", "landing_url": "https://SHOP.example/a#top"},
    "S5": {"created": at(12, 16), "referrer": "https://www.facebook.com/",
           "landing_url": "https://shop.example/b?fbclid_typo=1"},
    # 03:00 UTC on the 10th is still the 9th in New York.
    "S6": {"created": at(10, 3), "utm_source": "newsletter", "utm_medium": "email",
           "landing_url": "https://news.example/?issue=7"},
    # 02:00 UTC on the 15th is still the 14th in New York.
    "S7": {"created": at(15, 2), "utm_source": "newsletter", "utm_medium": "email",
           "landing_url": "https://news.example/"},
}  # fmt: skip

# (session, pool, number, started)
LEASES = [
    ("S1", "main", "+12565550101", at(10, 10)),
    ("S2", "main", "+12565550102", at(10, 11)),
    ("S3", "main", "+12565550101", at(11, 9)),
    ("S4", "brand", "+12565550103", at(12, 15)),
    ("S1", "brand", "+12565550103", at(13, 8)),
    ("S6", "main", "+12565550102", at(10, 3)),
]

# (call id, session, pool, started, first_time, answered, talk seconds)
CALLS = [
    ("C1", "S1", "main", at(10, 10, 5), True, True, 120),
    ("C2", "S2", "main", at(10, 11, 10), True, False, 0),
    ("C3", "S3", "main", at(11, 9, 30), False, True, 60),
    ("C4", "S4", "brand", at(12, 15, 20), True, True, 30),
    ("C5", None, "main", at(13, 12), True, True, 45),
    ("C6", "S6", "main", at(10, 3, 10), True, True, 10),
    ("C7", "S5", "brand", at(12, 16, 30), True, True, 200),
]

# (id, session, pool, created, status)
CALLBACKS = [
    ("cb_1", "S5", "brand", at(12, 16, 5), "completed"),
    ("cb_2", "S2", "main", at(10, 11, 20), "failed"),
    ("cb_3", "S7", "main", at(15, 2, 10), "queued"),
]

# (day, source, medium, campaign, cost in micros, currency)
SPEND = [
    (10, "google", "cpc", "spring", 100_000_000, "USD"),
    (11, "google", "cpc", "spring", 50_000_000, "USD"),
    (11, "google", "cpc", "", 30_000_000, "USD"),
    (12, "bing", "cpc", "autumn", 40_000_000, "USD"),
    (14, "bing", "cpc", "autumn", 20_000_000, "USD"),
    (15, "google", "cpc", "spring", 999_000_000, "USD"),  # after the period
    (9, "google", "cpc", "spring", 500_000_000, "USD"),  # before it
]


async def build(db: AsyncSession) -> None:
    """Write the whole history."""
    made = at(1, 0)
    pools = {}
    for name in ("main", "brand"):
        pool = Pool(
            name=name,
            destination="+12125550100",
            fallback_number="+12125550100",
            lease_ttl_seconds=1800,
            cooldown_seconds=900,
            match_window_seconds=900,
            created_at=made,
            updated_at=made,
        )
        db.add(pool)
        pools[name] = pool
    await db.flush()
    numbers = {}
    for e164, pool_name in (
        ("+12565550101", "main"),
        ("+12565550102", "main"),
        ("+12565550103", "brand"),
    ):
        number = TrackingNumber(
            pool_id=pools[pool_name].id, e164=e164, available_at=made, created_at=made
        )
        db.add(number)
        numbers[e164] = number
    for sid, spec in SESSIONS.items():
        context = {k: v for k, v in spec.items() if k != "created"}
        db.add(
            VisitorSession(
                id=f"session-{sid}-0000000",
                created_at=spec["created"],
                last_seen_at=spec["created"],
                **context,
                **derived(context),
            )
        )
    await db.flush()
    for sid, pool_name, e164, started in LEASES:
        db.add(
            Lease(
                number_id=numbers[e164].id,
                pool_id=pools[pool_name].id,
                session_id=f"session-{sid}-0000000",
                started_at=started,
                ends_at=started.replace(minute=30),
            )
        )
    for call_id, visit, pool_name, started, first, answered, talk in CALLS:
        session = SESSIONS[visit] if visit else None
        channel = derived({k: v for k, v in session.items() if k != "created"}) if session else {}
        db.add(
            Call(
                provider="cloudonix",
                provider_call_id=call_id,
                direction="inbound",
                from_number="+16175550100",
                to_number="+12565550101",
                pool_id=pools[pool_name].id,
                session_id=f"session-{visit}-0000000" if visit else None,
                attribution="dni" if visit else "none",
                first_time=first,
                source=channel.get("source"),
                medium=channel.get("medium"),
                campaign=channel.get("campaign"),
                status="completed",
                started_at=started,
                answered_at=started if answered else None,
                talk_seconds=talk,
                created_at=started,
                updated_at=started,
            )
        )
    for request_id, sid, pool_name, created, status in CALLBACKS:
        db.add(
            CallbackRequest(
                id=request_id,
                pool_id=pools[pool_name].id,
                session_id=f"session-{sid}-0000000",
                phone="+12127778900" if status != "queued" else "+12127778901",
                status=status,
                attempts=1,
                agent_index=0,
                next_attempt_at=created,
                scheduled_for=created,
                expires_at=created,
                created_at=created,
                updated_at=created,
            )
        )
    for day, source, medium, campaign, micros, currency in SPEND:
        db.add(
            MediaSpend(
                day=date(2026, 11, day),
                source=source,
                medium=medium,
                campaign=campaign,
                cost_micros=micros,
                currency=currency,
                created_at=made,
                updated_at=made,
            )
        )
    await db.flush()
