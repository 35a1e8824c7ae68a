"""Public endpoint of Web-To-Call: credentials for one browser call of a visit."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api import visitors
from app.api.deps import NowDep, SessionDep, StateDep
from app.errors import Forbidden
from app.schemas.problem import problem_responses
from app.schemas.public import VisitContext
from app.schemas.web_to_call import WebCallCredentials, WebCallRequest
from app.services import pools, visits, web_to_call
from app.services.bots import is_bot

router = APIRouter(tags=["public"])


@router.post(
    "/web_to_call",
    response_model=WebCallCredentials,
    responses=problem_responses(403, 404, 422, 429, 503),
    summary="Credentials for a call from the visitor's browser (WebRTC)",
)
async def web_to_call_credentials(
    body: WebCallRequest,
    request: Request,
    response: Response,
    db: SessionDep,
    state: StateDep,
    now: NowDep,
) -> WebCallCredentials:
    """Make a short-lived SIP subscriber for the visit and hand its credentials out once.

    The page registers over `websocket_url` and dials `dial` with `headers`; the call is
    credited to this visit exactly (attribution `web_to_call`), with no tracking number.
    """
    response.headers["Cache-Control"] = "no-store"
    visitor = await visitors.identify(request, db, VisitContext())
    visitors.enforce(await state.limiter.hit(visits.rate_key(visitor)))
    if is_bot(visitor.user_agent):
        raise Forbidden("crawlers do not place calls", field="user_agent")
    pool = await pools.resolve(db, state.pool_cache, body.pool)
    issued = await web_to_call.issue(
        db,
        provider=state.voice,
        settings=state.settings,
        session_id=body.session_id,
        pool=pool,
        now=now,
    )
    return WebCallCredentials(
        session_id=issued.session_id,
        websocket_url=issued.websocket_url,
        uri=issued.uri,
        username=issued.username,
        password=issued.password,
        realm=issued.realm,
        dial=issued.dial,
        headers={web_to_call.SESSION_HEADER: issued.session_id},
        expires_at=issued.expires_at,
        expires_in=int((issued.expires_at - now).total_seconds()),
    )
