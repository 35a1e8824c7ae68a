"""Pools and their numbers: create, change, fill, retire, measure."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Pool
from app.db.repositories import fallbacks, leases, numbers, pools
from app.errors import Conflict, InvalidInput, NotFound
from app.services import hours
from app.services.phone import InvalidPhone, to_e164


@dataclass(frozen=True)
class PoolConfig:
    """What the leasing path needs of a pool; safe to cache across requests."""

    id: int
    name: str
    fallback_number: str
    lease_ttl_seconds: int
    cooldown_seconds: int


class PoolCache:
    """Pools by name for a few seconds, so a lease costs no pool lookup.

    A change made through this process is seen at once; one made through another server
    is seen within `ttl` seconds.
    """

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._items: dict[str, tuple[float, PoolConfig]] = {}

    def get(self, name: str) -> PoolConfig | None:
        """The cached pool, if still fresh."""
        item = self._items.get(name)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def put(self, config: PoolConfig) -> None:
        """Remember a pool."""
        if self._ttl > 0:
            self._items[config.name] = (time.monotonic() + self._ttl, config)

    def forget(self, name: str) -> None:
        """Drop a pool after it changed."""
        self._items.pop(name, None)


def _config(pool: Pool) -> PoolConfig:
    return PoolConfig(
        id=pool.id,
        name=pool.name,
        fallback_number=pool.fallback_number,
        lease_ttl_seconds=pool.lease_ttl_seconds,
        cooldown_seconds=pool.cooldown_seconds,
    )


async def resolve(db: AsyncSession, cache: PoolCache, name: str) -> PoolConfig:
    """The pool a public request names; an unknown name is the caller's error."""
    cached = cache.get(name)
    if cached is not None:
        return cached
    pool = await pools.get_by_name(db, name)
    if pool is None:
        raise InvalidInput(f"pool {name!r} does not exist", field="pool")
    config = _config(pool)
    cache.put(config)
    return config


async def list_all(db: AsyncSession) -> Sequence[Pool]:
    """Every pool, by name."""
    return await pools.list_all(db)


async def get(db: AsyncSession, name: str) -> Pool:
    """The pool with this name, or NotFound."""
    pool = await pools.get_by_name(db, name)
    if pool is None:
        raise NotFound(f"pool {name!r} does not exist", field="name")
    return pool


def _phone(raw: str, *, field: str, region: str) -> str:
    try:
        return to_e164(raw, region=region)
    except InvalidPhone as exc:
        raise InvalidInput(f"{field}: {exc}: {raw!r}", field=field) from exc


DEFAULT_MATCH_WINDOW = 900
_NULLABLE = {"source", "medium", "campaign", "business_hours", "callback_countries"}


def _callback_options(options: dict[str, object], *, region: str) -> dict[str, object]:
    """Agents in E.164, business hours checked and normalised, countries upper-cased."""
    out = dict(options)
    if "agents" in out:
        raw = out["agents"] or []
        assert isinstance(raw, list)
        agents = [_phone(str(a), field=f"agents[{i}]", region=region) for i, a in enumerate(raw)]
        if len(set(agents)) != len(agents):
            raise InvalidInput("agents: the same phone is listed twice", field="agents")
        out["agents"] = agents
    if "business_hours" in out:
        raw_hours = out["business_hours"]
        assert raw_hours is None or isinstance(raw_hours, dict)
        try:
            out["business_hours"] = hours.normalise(raw_hours)
        except hours.InvalidHours as exc:
            raise InvalidInput(
                f"business_hours.{exc.field}: {exc}", field=f"business_hours.{exc.field}"
            ) from exc
    if out.get("callback_countries") is not None:
        countries = [str(c).upper() for c in out["callback_countries"]]  # type: ignore[attr-defined]
        for index, country in enumerate(countries):
            if country not in phonenumbers.SUPPORTED_REGIONS:
                raise InvalidInput(
                    f"callback_countries[{index}]: unknown country {country!r}",
                    field=f"callback_countries[{index}]",
                )
        out["callback_countries"] = sorted(set(countries))
    return out


def _check_window(cooldown: int, window: int, *, field: str) -> None:
    # A window longer than the cooldown would reach into the number's next lease and credit
    # one visitor's call to another.
    if window > cooldown:
        raise InvalidInput(
            f"{field}: match_window_seconds ({window}) may not exceed cooldown_seconds "
            f"({cooldown}), or late calls would be credited to the number's next visitor",
            field=field,
        )


async def create(
    db: AsyncSession,
    *,
    name: str,
    destination: str,
    fallback_number: str,
    lease_ttl_seconds: int,
    cooldown_seconds: int,
    region: str,
    now: datetime,
    match_window_seconds: int | None = None,
    **options: object,
) -> Pool:
    """Create a pool; its name must be new."""
    window = (
        min(cooldown_seconds, DEFAULT_MATCH_WINDOW)
        if match_window_seconds is None
        else match_window_seconds
    )
    _check_window(cooldown_seconds, window, field="match_window_seconds")
    fields = {
        "destination": _phone(destination, field="destination", region=region),
        "fallback_number": _phone(fallback_number, field="fallback_number", region=region),
        "lease_ttl_seconds": lease_ttl_seconds,
        "cooldown_seconds": cooldown_seconds,
        "match_window_seconds": window,
        **_callback_options(options, region=region),
    }
    if await pools.get_by_name(db, name) is not None:
        raise Conflict(f"pool {name!r} already exists", field="name")
    try:
        return await pools.create(db, now=now, name=name, **fields)
    except IntegrityError as exc:  # a concurrent create of the same name
        raise Conflict(f"pool {name!r} already exists", field="name") from exc


async def update(
    db: AsyncSession,
    cache: PoolCache,
    *,
    name: str,
    changes: dict[str, object],
    region: str,
    now: datetime,
) -> Pool:
    """Change a pool's settings; leases already granted keep their end."""
    pool = await get(db, name)
    for field in ("destination", "fallback_number"):
        if changes.get(field) is not None:
            changes[field] = _phone(str(changes[field]), field=field, region=region)
    if changes.get("agents", ...) is None:
        changes["agents"] = []  # null: back to ringing the destination
    changes = _callback_options(changes, region=region)
    values = {k: v for k, v in changes.items() if v is not None or k in _NULLABLE}
    cooldown = values.get("cooldown_seconds", pool.cooldown_seconds)
    window = values.get("match_window_seconds", pool.match_window_seconds)
    assert isinstance(cooldown, int)
    assert isinstance(window, int)
    blamed = "match_window_seconds" if "match_window_seconds" in values else "cooldown_seconds"
    _check_window(cooldown, window, field=blamed)
    cache.forget(name)
    return await pools.update(db, pool, now=now, **values)


async def add_numbers(
    db: AsyncSession, *, name: str, raw_numbers: Sequence[str], region: str, now: datetime
) -> tuple[int, int]:
    """Add numbers to a pool, all or none; returns (added, reactivated)."""
    pool = await get(db, name)
    normalised: list[str] = []
    seen: set[str] = set()
    repeated: list[str] = []
    for index, raw in enumerate(raw_numbers):
        e164 = _phone(raw, field=f"numbers[{index}]", region=region)
        if e164 in seen:
            repeated.append(e164)
        seen.add(e164)
        normalised.append(e164)
    if repeated:
        raise InvalidInput(
            f"numbers: listed more than once: {', '.join(sorted(set(repeated)))}",
            field="numbers",
            duplicates=sorted(set(repeated)),
        )
    existing = await numbers.find_existing(db, normalised)
    taken = [e for e in existing if e.active]
    if taken:
        raise Conflict(
            "numbers: already in a pool: "
            + ", ".join(f"{e.e164} ({e.pool_name})" for e in taken[:20]),
            field="numbers",
            duplicates=[{"number": e.e164, "pool": e.pool_name} for e in taken],
        )
    retired = {e.e164 for e in existing}
    fresh = [n for n in normalised if n not in retired]
    try:
        await numbers.insert_new(db, pool_id=pool.id, numbers=fresh, now=now)
        await numbers.reactivate(db, pool_id=pool.id, numbers=sorted(retired), now=now)
    except IntegrityError as exc:  # a concurrent request added one of them first
        raise Conflict("numbers: some were added by a concurrent request", field="numbers") from exc
    return len(fresh), len(retired)


async def retire_number(
    db: AsyncSession, *, name: str, raw_number: str, region: str, now: datetime
) -> None:
    """Stop leasing a number of the pool; its current lease runs to its end."""
    pool = await get(db, name)
    e164 = _phone(raw_number, field="e164", region=region)
    if not await numbers.retire(db, pool_id=pool.id, e164=e164, now=now):
        raise NotFound(f"{e164} is not an active number of pool {name!r}", field="e164")


@dataclass(frozen=True)
class Stats:
    """Use of a pool now and over a window."""

    since: datetime
    until: datetime
    size: int
    leased_now: int
    leases_started: int
    fallbacks_by_reason: dict[str, int]
    peak_concurrent: int


def window(window_seconds: int, now: datetime) -> tuple[datetime, datetime]:
    """The half-open [since, until) of a window ending now, this very instant included."""
    return now - timedelta(seconds=window_seconds), now + timedelta(microseconds=1)


async def stats(db: AsyncSession, *, pool: Pool, window_seconds: int, now: datetime) -> Stats:
    """Measure a pool: size, live leases, fallbacks and peak concurrency in the window."""
    since, until = window(window_seconds, now)
    return Stats(
        since=since,
        until=now,
        size=await numbers.count_active(db, pool.id),
        leased_now=await numbers.count_leased(db, pool.id, now),
        leases_started=await leases.count_started(db, pool_id=pool.id, since=since, until=until),
        fallbacks_by_reason=await fallbacks.count_by_reason(
            db, pool_id=pool.id, since=since, until=until
        ),
        peak_concurrent=await leases.peak_concurrent(db, pool_id=pool.id, since=since, until=until),
    )
