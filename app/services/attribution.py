"""Which visit made the phone ring: dni, then caller id, then a static source."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import VisitorSession
from app.db.repositories import calls
from app.db.repositories.calls import NumberRoute
from app.services.marketing import channel_of


class Method(StrEnum):
    """How a call was attributed."""

    DNI = "dni"
    CALLER_ID = "caller_id"
    SOURCE = "source"
    WEB_TO_CALL = "web_to_call"
    UNATTRIBUTED = "unattributed"


@dataclass(frozen=True)
class Attribution:
    """The outcome of attributing one call."""

    method: Method
    session_id: str | None = None
    lease_id: int | None = None
    source: str | None = None
    medium: str | None = None
    campaign: str | None = None


def _from_session(
    method: Method, session_id: str, session: VisitorSession | None, lease_id: int | None = None
) -> Attribution:
    if session is None:  # only if sessions were purged; keep the link, lose the context
        return Attribution(method=method, session_id=session_id, lease_id=lease_id)
    channel = channel_of(session)
    return Attribution(
        method=method,
        session_id=session_id,
        lease_id=lease_id,
        source=channel.source,
        medium=channel.medium,
        campaign=channel.campaign,
    )


async def attribute(
    db: AsyncSession,
    *,
    route: NumberRoute | None,
    caller: str | None,
    started_at: datetime,
    web_session: str | None = None,
) -> Attribution:
    """Attribute a call on `route`'s number from `caller` that started at `started_at`.

    A browser call (`web_session`) belongs to its visit exactly: no pool, no match window.
    """
    if web_session is not None:
        visit = await db.get(VisitorSession, web_session)
        return _from_session(Method.WEB_TO_CALL, web_session, visit)
    if route is not None:
        found = await calls.lease_at(db, number_id=route.number_id, at=started_at)
        if found is not None and started_at < found.ends_at + timedelta(
            seconds=found.match_window_seconds
        ):
            return _from_session(Method.DNI, found.session_id, found.session, found.lease_id)
    if caller is not None:
        known = await calls.latest_session_of_caller(db, caller=caller, before=started_at)
        if known is not None:
            session = await db.get(VisitorSession, known[0])
            return _from_session(Method.CALLER_ID, known[0], session)
    if route is not None and route.source is not None:
        return Attribution(
            method=Method.SOURCE,
            source=route.source,
            medium=route.medium,
            campaign=route.campaign,
        )
    return Attribution(method=Method.UNATTRIBUTED)
