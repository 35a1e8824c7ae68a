"""Ops API: calls, attributed or not."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api.deps import AdminDep, SessionDep
from app.db.models import Call
from app.schemas.calls import AttributionMethod, CallDetail, CallLease, CallOut, CallPage
from app.schemas.problem import problem_responses
from app.schemas.sessions import SessionContext
from app.services import call_log

router = APIRouter(
    prefix="/v1/calls",
    tags=["calls"],
    dependencies=[AdminDep],
    responses=problem_responses(401, 503),
)


def _out(call: Call, pool: str | None) -> dict[str, object]:
    fields = {name: getattr(call, name) for name in CallOut.model_fields if hasattr(call, name)}
    fields["pool"] = pool
    return fields


@router.get("", response_model=CallPage, responses=problem_responses(422))
async def list_calls(
    db: SessionDep,
    since: Annotated[
        datetime | None, Query(alias="from", description="Calls that started at or after this.")
    ] = None,
    until: Annotated[
        datetime | None, Query(alias="to", description="Calls that started before this.")
    ] = None,
    pool: Annotated[str | None, Query(max_length=63)] = None,
    attribution: AttributionMethod | None = None,
    source: Annotated[str | None, Query(max_length=255)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CallPage:
    """Calls, newest first, filtered by time range, pool, attribution method and source."""
    rows, next_cursor = await call_log.page(
        db,
        since=call_log.utc(since, field="query.from"),
        until=call_log.utc(until, field="query.to"),
        pool=pool,
        attribution=attribution,
        source=source,
        cursor=cursor,
        limit=limit,
    )
    return CallPage(
        items=[CallOut.model_validate(_out(call, name)) for call, name in rows],
        next_cursor=next_cursor,
    )


@router.get("/{call_id}", response_model=CallDetail, responses=problem_responses(404))
async def get_call(
    call_id: Annotated[int, Path(ge=1, le=call_log.MAX_ID)], db: SessionDep
) -> CallDetail:
    """A call with its visitor session's marketing context and the lease it matched."""
    call, pool, session, lease, number = await call_log.detail(db, call_id)
    return CallDetail.model_validate(
        {
            **_out(call, pool),
            "context": SessionContext.model_validate(session, from_attributes=True)
            if session
            else None,
            "lease": CallLease(number=number, started_at=lease.started_at, ends_at=lease.ends_at)
            if lease
            else None,
        }
    )
