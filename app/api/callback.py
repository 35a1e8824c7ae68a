"""Click-to-callback for website backends and pages: queue a request, follow it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response

from app.api import visitors
from app.api.deps import NowDep, SessionDep, StateDep
from app.schemas.callbacks import CALLBACK_ID_PATTERN, CallbackIn, CallbackQueued, CallbackState
from app.schemas.problem import problem_responses
from app.services import callbacks, visits
from app.services.callback_flow import ACTIVE, Policy

router = APIRouter(tags=["public"])

QUEUED = "Callback request queued, please wait..."


@router.post(
    "/callback",
    response_model=CallbackQueued,
    responses=problem_responses(401, 422, 429),
    summary="Queue a callback: an agent is called first, then the visitor",
)
async def request_callback(
    body: CallbackIn,
    request: Request,
    response: Response,
    db: SessionDep,
    state: StateDep,
    now: NowDep,
    tasks: BackgroundTasks,
) -> CallbackQueued:
    """Queue a callback for the prospect's phone, or answer the number's pending one.

    Off-hours requests are scheduled for the pool's next opening (`scheduled_for`). Limits
    apply per visitor IP and per number, and only numbers in the pool's countries are called.
    """
    response.headers["Cache-Control"] = "no-store"
    visitor = await visitors.identify(request, db, body.context)
    key = visits.rate_key(visitor)
    visitors.enforce(await state.limiter.hit(key))
    visitors.enforce(await state.callback_limiter.hit(f"cb:{key}"), "callback requests")
    settings = state.settings
    fields = visitors.session_fields(
        settings,
        body.context,
        {"email": body.email.lower() if body.email else None, "fullname": body.fullname or None},
        visitor,
    )
    queued = await callbacks.request_callback(
        db,
        pool_name=body.pool,
        raw_phone=body.phone,
        session_id=body.session_id,
        fields=fields,
        site_key_id=visitor.site_key_id,
        region=settings.default_region,
        default_countries=settings.callback_regions,
        number_limit=settings.callback_number_limit,
        policy=Policy.of(settings),
        now=now,
    )
    found = queued.request
    if queued.created:
        state.metrics.callbacks.labels(found.status).inc()
        if state.callback_worker is not None:
            tasks.add_task(state.callback_worker.wake)  # after the commit
    # A form naming a number another visit already asked for gets that request's id (its
    # state is nothing personal) but never that visit's session id.
    own_session = queued.created or (
        body.session_id is not None and body.session_id == found.session_id
    )
    return CallbackQueued(
        message=QUEUED,
        callback_id=found.id,
        scheduled_for=found.scheduled_for,
        state=found.status,
        session_id=found.session_id if own_session else body.session_id,
    )


@router.get(
    "/callback/{callback_id}",
    response_model=CallbackState,
    responses=problem_responses(404, 422, 429),
    summary="A callback request's state, for the page to poll",
)
async def callback_state(
    callback_id: Annotated[str, Path(pattern=CALLBACK_ID_PATTERN)],
    request: Request,
    response: Response,
    db: SessionDep,
    state: StateDep,
) -> CallbackState:
    """Where the request stands: queued, calling, completed, ...; no personal data."""
    response.headers["Cache-Control"] = "no-store"
    peer = request.client.host if request.client else "unknown"
    visitors.enforce(await state.limiter.hit(f"ip:{peer}"))
    found = await callbacks.get(db, callback_id)
    return CallbackState(
        callback_id=found.id,
        state=found.status,
        scheduled_for=found.scheduled_for,
        next_attempt_at=found.next_attempt_at if found.status in ACTIVE else None,
        attempts=found.attempts,
        created_at=found.created_at,
        updated_at=found.updated_at,
        ended_at=found.ended_at,
    )
