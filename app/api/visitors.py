"""The visitor behind a public request: who vouches for it, its limits, what is kept of it."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import bearer_token
from app.errors import RateLimited
from app.ratelimit import Decision
from app.schemas.public import VisitContext
from app.services import site_keys, visits
from app.settings import Settings


async def identify(request: Request, db: AsyncSession, context: VisitContext) -> visits.Visitor:
    """A site-keyed backend speaks for its visitor (`context.ip`); a browser for itself."""
    token = bearer_token(request)
    site_key = await site_keys.verify(db, token) if token else None
    return visits.identify(
        site_key_id=site_key.id if site_key else None,
        context_ip=context.ip,
        context_user_agent=context.user_agent,
        peer_ip=request.client.host if request.client else None,
        header_user_agent=request.headers.get("user-agent"),
    )


def enforce(decision: Decision, what: str = "requests") -> None:
    """Refuse with 429 and Retry-After when the limiter said no."""
    if not decision.allowed:
        raise RateLimited(
            f"too many {what} from this visitor; retry later",
            headers={"Retry-After": str(decision.retry_after), "Cache-Control": "no-store"},
            retry_after=decision.retry_after,
        )


def session_fields(
    settings: Settings,
    context: VisitContext,
    prospect: Mapping[str, str | None],
    visitor: visits.Visitor,
) -> dict[str, str | None]:
    """What the visit's session keeps: context, prospect, user agent and the hashed IP."""
    key = settings.ip_hash_key
    return visits.session_fields(
        context=context.model_dump(),
        prospect=prospect,
        visitor=visitor,
        ip_hash_key=key.get_secret_value().encode() if key else None,
    )
