"""Ops API: media spend, imported from the ad platforms and listed by day."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import AdminDep, NowDep, SessionDep
from app.db.models import MediaSpend
from app.schemas.problem import problem_responses
from app.schemas.spend import Day, SpendImport, SpendImported, SpendOut, SpendPage
from app.services import spend

router = APIRouter(
    prefix="/v1/spend",
    tags=["spend"],
    dependencies=[AdminDep],
    responses=problem_responses(401, 503),
)


def _out(row: MediaSpend) -> SpendOut:
    return SpendOut(
        day=row.day,
        source=row.source,
        medium=row.medium,
        campaign=row.campaign,
        cost=spend.cost_text(row.cost_micros),
        cost_micros=row.cost_micros,
        currency=row.currency,
        clicks=row.clicks,
        impressions=row.impressions,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.post("", response_model=SpendImported, responses=problem_responses(422))
async def import_spend(body: SpendImport, db: SessionDep, now: NowDep) -> SpendImported:
    """Add or replace spend rows by day, source, medium and campaign: all or none.

    Importing the same rows again changes nothing (they are counted unchanged). A row's
    clicks and impressions are replaced too: left out, they are stored as null.
    """
    done = await spend.import_rows(db, body.rows, now=now)
    return SpendImported(
        received=done.received,
        inserted=done.inserted,
        updated=done.updated,
        unchanged=done.unchanged,
    )


@router.get("", response_model=SpendPage, responses=problem_responses(422))
async def list_spend(
    db: SessionDep,
    first_day: Annotated[Day, Query(alias="from", description="First day, YYYY-MM-DD.")],
    last_day: Annotated[Day, Query(alias="to", description="Last day (included), YYYY-MM-DD.")],
    source: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> SpendPage:
    """Spend of the days from..to, by day, source, medium and campaign."""
    rows, next_cursor = await spend.page(
        db,
        first_day=first_day,
        last_day=last_day,
        source=source,
        cursor=cursor,
        limit=limit,
    )
    return SpendPage(items=[_out(row) for row in rows], next_cursor=next_cursor)
