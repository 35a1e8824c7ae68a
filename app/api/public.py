"""Public endpoints called by website backends and visitors' browsers."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.deps import NowDep, SessionDep, StateDep, bearer_token
from app.errors import InvalidInput, RateLimited
from app.schemas.problem import problem_responses
from app.schemas.public import TrackingNumberRequest, TrackingNumberResponse
from app.services import leasing, pools, site_keys, visits
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
    token = bearer_token(request)
    site_key = await site_keys.verify(db, token) if token else None
    visitor = visits.identify(
        site_key_id=site_key.id if site_key else None,
        context_ip=body.context.ip,
        context_user_agent=body.context.user_agent,
        peer_ip=request.client.host if request.client else None,
        header_user_agent=request.headers.get("user-agent"),
    )
    decision = await state.limiter.hit(visits.rate_key(visitor))
    if not decision.allowed:
        raise RateLimited(
            "too many requests from this visitor; retry later",
            headers={"Retry-After": str(decision.retry_after), "Cache-Control": "no-store"},
            retry_after=decision.retry_after,
        )

    phone = None
    if body.phone:
        try:
            phone = to_e164(body.phone, region=state.settings.default_region)
        except InvalidPhone as exc:
            raise InvalidInput(f"phone: {exc}", field="phone") from exc
    key = state.settings.ip_hash_key
    fields = visits.session_fields(
        context=body.context.model_dump(),
        prospect={
            "email": body.email.lower() if body.email else None,
            "phone": phone,
            "fullname": body.fullname or None,
        },
        visitor=visitor,
        ip_hash_key=key.get_secret_value().encode() if key else None,
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
        tracked=assigned.tracked,
        fallback_reason=assigned.fallback_reason,
    )
