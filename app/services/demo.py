"""The demo site's data: a pool of emulated numbers, made the first time the demo opens,
and a call's attribution for the demo panel."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import calls, numbers
from app.db.repositories import pools as pool_rows
from app.errors import Conflict
from app.services import pools

POOL = "demo"
BUSINESS_NUMBER = "+12125550100"  # what the demo page prints; the pool's destination too
# 555-01xx numbers are reserved for fiction, so the demo's never reach a real person.
NUMBERS = tuple(f"+1646555{n:04d}" for n in range(120, 140))
PROVIDER = "cloudonix"  # the emulator plays Cloudonix, and calls are stored as such


async def ensure_pool(db: AsyncSession, *, region: str, now: datetime) -> bool:
    """Create the demo pool with the numbers no other pool holds; True when it was made."""
    if await pool_rows.get_by_name(db, POOL) is not None:
        return False
    try:
        async with db.begin_nested():
            await pools.create(
                db,
                name=POOL,
                destination=BUSINESS_NUMBER,
                fallback_number=BUSINESS_NUMBER,
                lease_ttl_seconds=600,
                cooldown_seconds=120,
                region=region,
                now=now,
            )
            taken = {e.e164 for e in await numbers.find_existing(db, NUMBERS)}
            free = [n for n in NUMBERS if n not in taken]
            if free:
                await pools.add_numbers(db, name=POOL, raw_numbers=free, region=region, now=now)
    except Conflict:
        return False  # a concurrent first visit made it
    return True


async def attributed_call(db: AsyncSession, token: str) -> dict[str, object] | None:
    """What the demo panel shows of a call: how it was credited and to which visit."""
    call = await calls.get_by_provider_id(db, provider=PROVIDER, call_id=token)
    if call is None:
        return None
    found = await calls.get_detail(db, call.id)
    assert found is not None
    _, pool, session, _, _ = found
    return {
        "call_id": call.id,
        "to_number": call.to_number,
        "pool": pool,
        "attribution": call.attribution,
        "first_time": call.first_time,
        "status": call.status,
        "talk_seconds": call.talk_seconds,
        "source": call.source,
        "medium": call.medium,
        "campaign": call.campaign,
        "gclid": session.gclid if session else None,
        "landing_url": session.landing_url if session else None,
    }
