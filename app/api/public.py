"""Public endpoints called by website backends and visitors' browsers."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api import visitors
from app.api.deps import NowDep, SessionDep, StateDep
from app.errors import InvalidInput
from app.schemas.problem import problem_responses
from app.schemas.public import TrackingNumberRequest, TrackingNumberResponse
from app.services import leasing, pools, visits
from app.services.bots import is_bot
from app.services.phone import InvalidPhone, digits, to_e164

router = APIRouter(tags=["public"])

_ASSIGNED = "ephemeral phone number assigned"
_FALLBACK = "fallback phone number assigned"


@router.post(
    "/get_tracking_number",
    response_model=TrackingNumberResponse,
    responses=problem_responses(401, 422, 429),
    summary="Lease a tracking number to a visitor session",
)
async def get_tracking_number(
    body: TrackingNumberRequest,
    request: Request,
    response: Response,
    db: SessionDep,
    state: StateDep,
    now: NowDep,
) -> TrackingNumberResponse:
    """Lease (or renew) an ephemeral tracking number for the visitor, or serve the fallback.

    A website backend authenticates with `Authorization: Bearer <site key>` and may then
    pass the visitor's `context.ip` and `context.user_agent`; a browser is known by its own.
    """
    response.headers["Cache-Control"] = "no-store"
    visitor = await visitors.identify(request, db, body.context)
    visitors.enforce(await state.limiter.hit(visits.rate_key(visitor)))

    phone = None
    if body.phone:
        try:
            phone = to_e164(body.phone, region=state.settings.default_region)
        except InvalidPhone as exc:
            raise InvalidInput(f"phone: {exc}", field="phone") from exc
    fields = visitors.session_fields(
        state.settings,
        body.context,
        {
            "email": body.email.lower() if body.email else None,
            "phone": phone,
            "fullname": body.fullname or None,
        },
        visitor,
    )
    pool = await pools.resolve(db, state.pool_cache, body.pool)
    assigned = await leasing.assign(
        db,
        pool=pool,
        session_id=body.session_id,
        fields=fields,
        site_key_id=visitor.site_key_id,
        is_bot=is_bot(visitor.user_agent),
        now=now,
    )
    if assigned.tracked:
        state.metrics.leases.labels(pool.name, "renewed" if assigned.renewed else "new").inc()
    else:
        state.metrics.fallbacks.labels(pool.name, assigned.fallback_reason or "unknown").inc()
    return TrackingNumberResponse(
        message=_ASSIGNED if assigned.tracked else _FALLBACK,
        phonenumber=digits(assigned.e164),
        session_id=assigned.session_id,
        expires_at=assigned.expires_at,
        # Whole seconds, rounded down, so a page never renews too late.
        expires_in=(
            int((assigned.expires_at - now).total_seconds()) if assigned.expires_at else None
        ),
        tracked=assigned.tracked,
        fallback_reason=assigned.fallback_reason,
    )
