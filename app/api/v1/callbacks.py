"""Ops API: callback requests, their attempts, and cancelling them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import AdminDep, NowDep, SessionDep, StateDep
from app.db.models import CallbackRequest
from app.schemas.callbacks import (
    CALLBACK_ID_PATTERN,
    CallbackAttemptOut,
    CallbackDetail,
    CallbackOut,
    CallbackPage,
    CallbackStatus,
)
from app.schemas.problem import problem_responses
from app.services import call_log, callbacks

router = APIRouter(
    prefix="/v1/callbacks",
    tags=["callbacks"],
    dependencies=[AdminDep],
    responses=problem_responses(401, 503),
)
CallbackIdPath = Annotated[str, Path(pattern=CALLBACK_ID_PATTERN)]


def _out(request: CallbackRequest, pool: str) -> dict[str, object]:
    fields = {name: getattr(request, name) for name in CallbackOut.model_fields if name != "pool"}
    fields["pool"] = pool
    return fields


@router.get("", response_model=CallbackPage, responses=problem_responses(422))
async def list_callbacks(
    db: SessionDep,
    since: Annotated[
        datetime | None, Query(alias="from", description="Requests made at or after this.")
    ] = None,
    until: Annotated[
        datetime | None, Query(alias="to", description="Requests made before this.")
    ] = None,
    pool: Annotated[str | None, Query(max_length=63)] = None,
    status: CallbackStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CallbackPage:
    """Callback requests, newest first, filtered by time range, pool and status."""
    rows, next_cursor = await callbacks.page(
        db,
        since=call_log.utc(since, field="query.from"),
        until=call_log.utc(until, field="query.to"),
        pool=pool,
        status=status,
        cursor=cursor,
        limit=limit,
    )
    return CallbackPage(
        items=[CallbackOut.model_validate(_out(request, name)) for request, name in rows],
        next_cursor=next_cursor,
    )


async def _detail(db: AsyncSession, callback_id: str) -> CallbackDetail:
    request, pool, attempts = await callbacks.detail(db, callback_id)
    return CallbackDetail.model_validate(
        {
            **_out(request, pool),
            "attempts_made": [CallbackAttemptOut.model_validate(a) for a in attempts],
        }
    )


@router.get("/{callback_id}", response_model=CallbackDetail, responses=problem_responses(404))
async def get_callback(callback_id: CallbackIdPath, db: SessionDep) -> CallbackDetail:
    """A request with every attempt: which agent, how each leg ended."""
    return await _detail(db, callback_id)


@router.post(
    "/{callback_id}/cancel", response_model=CallbackDetail, responses=problem_responses(404, 409)
)
async def cancel_callback(
    callback_id: CallbackIdPath,
    db: SessionDep,
    state: StateDep,
    now: NowDep,
    tasks: BackgroundTasks,
) -> CallbackDetail:
    """Cancel a pending request; a call in progress is hung up. Cancelling twice is fine."""
    live_call = await callbacks.cancel(db, callback_id, now=now)
    if live_call is not None:
        # Once the cancel is committed, so the call's updates find the request cancelled.
        tasks.add_task(callbacks.hang_up, state.voice, live_call, reason="cancelled")
    return await _detail(db, callback_id)
