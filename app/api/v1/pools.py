"""Ops API: pools and their numbers."""

from __future__ import annotations

from dataclasses import asdict
from html import escape
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status

from app.api.deps import AdminDep, NowDep, SessionDep, StateDep
from app.assets import asset
from app.schemas.pools import (
    NumbersAdd,
    NumbersAdded,
    PoolCreate,
    PoolOut,
    PoolSizing,
    PoolSnippet,
    PoolStats,
    PoolUpdate,
)
from app.schemas.problem import problem_responses
from app.services import pools, sizing

router = APIRouter(
    prefix="/v1/pools",
    tags=["pools"],
    dependencies=[AdminDep],
    responses=problem_responses(401, 503),
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PoolOut,
    responses=problem_responses(409, 422),
)
async def create_pool(body: PoolCreate, db: SessionDep, state: StateDep, now: NowDep) -> PoolOut:
    """Create a pool of tracking numbers."""
    pool = await pools.create(
        db, **body.model_dump(), region=state.settings.default_region, now=now
    )
    return PoolOut.model_validate(pool)


@router.get("", response_model=list[PoolOut])
async def list_pools(db: SessionDep) -> list[PoolOut]:
    """Every pool."""
    return [PoolOut.model_validate(p) for p in await pools.list_all(db)]


@router.get("/{name}", response_model=PoolOut, responses=problem_responses(404))
async def get_pool(name: str, db: SessionDep) -> PoolOut:
    """One pool."""
    return PoolOut.model_validate(await pools.get(db, name))


@router.patch("/{name}", response_model=PoolOut, responses=problem_responses(404, 422))
async def update_pool(
    name: str,
    body: PoolUpdate,
    db: SessionDep,
    state: StateDep,
    now: NowDep,
    tasks: BackgroundTasks,
) -> PoolOut:
    """Change a pool's settings; fields left out keep their value."""
    pool = await pools.update(
        db,
        state.pool_cache,
        name=name,
        changes=body.model_dump(exclude_unset=True),
        region=state.settings.default_region,
        now=now,
    )
    tasks.add_task(state.desk.routes_changed)
    return PoolOut.model_validate(pool)


@router.post(
    "/{name}/numbers",
    status_code=status.HTTP_201_CREATED,
    response_model=NumbersAdded,
    responses=problem_responses(404, 409, 422),
)
async def add_numbers(
    name: str,
    body: NumbersAdd,
    db: SessionDep,
    state: StateDep,
    now: NowDep,
    tasks: BackgroundTasks,
) -> NumbersAdded:
    """Add numbers to a pool; all are added or none is."""
    added, reactivated = await pools.add_numbers(
        db, name=name, raw_numbers=body.numbers, region=state.settings.default_region, now=now
    )
    # Background tasks run after the commit, so the reload sees the new numbers.
    tasks.add_task(state.desk.routes_changed)
    return NumbersAdded(pool=name, added=added, reactivated=reactivated)


@router.delete(
    "/{name}/numbers/{e164}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 422),
)
async def retire_number(
    name: str, e164: str, db: SessionDep, state: StateDep, now: NowDep, tasks: BackgroundTasks
) -> Response:
    """Retire a number: it is leased no more once its current lease ends."""
    await pools.retire_number(
        db, name=name, raw_number=e164, region=state.settings.default_region, now=now
    )
    tasks.add_task(state.desk.routes_changed)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/stats", response_model=PoolStats, responses=problem_responses(404, 422))
async def pool_stats(
    name: str,
    db: SessionDep,
    now: NowDep,
    window_seconds: Annotated[int, Query(ge=60, le=90 * 86400)] = 86400,
) -> PoolStats:
    """Size, live leases, utilisation, fallbacks by reason and peak concurrency."""
    pool = await pools.get(db, name)
    measured = await pools.stats(db, pool=pool, window_seconds=window_seconds, now=now)
    size = measured.size
    return PoolStats(
        pool=name,
        size=size,
        leased_now=measured.leased_now,
        utilisation=round(measured.leased_now / size, 4) if size else 0.0,
        window_seconds=window_seconds,
        since=measured.since,
        until=measured.until,
        leases_started=measured.leases_started,
        fallbacks_total=sum(measured.fallbacks_by_reason.values()),
        fallbacks_by_reason=measured.fallbacks_by_reason,
        peak_concurrent_leases=measured.peak_concurrent,
        peak_utilisation=round(measured.peak_concurrent / size, 4) if size else 0.0,
    )


@router.get("/{name}/sizing", response_model=PoolSizing, responses=problem_responses(404, 422))
async def pool_sizing(
    name: str,
    db: SessionDep,
    now: NowDep,
    window_seconds: Annotated[int, Query(ge=3600, le=90 * 86400)] = 86400,
) -> PoolSizing:
    """The size the pool needs, by Little's law on the traffic of the window ending now.

    Numbers unavailable on average = new leases per second x mean hold, where a lease holds
    its number from its start to its end (or now) and then for the cooldown. The
    recommendation keeps that average at most 75% of the pool, and is never below the most
    leases held at once in the window; `add_numbers` is what it takes to get there.
    """
    pool = await pools.get(db, name)
    measured = await sizing.size(db, pool=pool, window_seconds=window_seconds, now=now)
    return PoolSizing(pool=name, window_seconds=window_seconds, **asdict(measured))


@router.get("/{name}/snippet", response_model=PoolSnippet, responses=problem_responses(404, 422))
async def pool_snippet(
    name: str,
    request: Request,
    db: SessionDep,
    state: StateDep,
    consent: Annotated[
        bool, Query(description="Lease nothing until the page calls CallTrack.consent(true).")
    ] = False,
    heartbeat: Annotated[
        int | None, Query(ge=5, le=3600, description="Seconds between lease renewals.")
    ] = None,
    pin: Annotated[
        bool,
        Query(
            description="Pin this version with Subresource Integrity: cached for a year, but "
            "the tag must be written again after every upgrade of the service."
        ),
    ] = False,
) -> PoolSnippet:
    """The `dni.js` tag for this pool's pages."""
    pool = await pools.get(db, name)
    script = asset("dni.js")
    base = (state.settings.public_url or str(request.base_url)).rstrip("/")
    src = f"{base}/dni.js?v={script.version}" if pin else f"{base}/dni.js"
    attributes = {"src": src}
    if pin:
        attributes |= {"integrity": script.integrity, "crossorigin": "anonymous"}
    attributes |= {"data-pool": pool.name, "data-numbers": pool.fallback_number}
    if consent:
        attributes["data-consent"] = "required"
    if heartbeat is not None:
        attributes["data-heartbeat"] = str(heartbeat)
    html = " ".join(f'{key}="{escape(value)}"' for key, value in attributes.items())
    return PoolSnippet(
        pool=pool.name,
        src=src,
        pinned=pin,
        integrity=script.integrity,
        gzip_bytes=len(script.gzipped),
        html=f"<script async {html}></script>",
    )
