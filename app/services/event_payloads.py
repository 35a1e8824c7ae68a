"""What an outbox event says: rendered once, when it is fanned out, and then frozen.

The shapes are the ops API's own (CallOut, CallbackOut, SessionContext, Prospect), so a
CRM reads a webhook with the same field names as `GET /v1/calls/{id}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Call, CallbackRequest, VisitorSession
from app.db.repositories import calls, pools, sessions
from app.schemas.callbacks import CallbackOut
from app.schemas.calls import CallOut
from app.schemas.sessions import Prospect, SessionContext
from app.services import outbox


@dataclass(frozen=True)
class Rendered:
    """An event's body, and what GA4 needs when the event is an attributed call."""

    body: dict[str, Any]
    ga_client_id: str | None = None


def _visit(visit: VisitorSession | None) -> dict[str, Any]:
    if visit is None:
        return {"context": None, "prospect": None}
    return {
        "context": SessionContext.model_validate(visit, from_attributes=True).model_dump(
            mode="json"
        ),
        "prospect": Prospect.model_validate(visit, from_attributes=True).model_dump(mode="json"),
    }


def _envelope(
    event_id: str, kind: str, created_at: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": kind,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }


async def _call(db: AsyncSession, subject: str) -> tuple[dict[str, Any], str | None] | None:
    found = await calls.get_detail(db, int(subject))
    if found is None:
        return None
    call, pool, visit, _lease, _number = found
    fields = {name: getattr(call, name) for name in CallOut.model_fields if hasattr(call, name)}
    data = CallOut.model_validate({**fields, "pool": pool}).model_dump(mode="json")
    ga = visit.ga_client_id if visit is not None and _attributed(call) else None
    return {**data, **_visit(visit)}, ga


def _attributed(call: Call) -> bool:
    return call.session_id is not None and call.attribution != "unattributed"


async def _callback(db: AsyncSession, subject: str) -> dict[str, Any] | None:
    request = await db.get(CallbackRequest, subject.partition(":")[0])
    if request is None:
        return None
    pool = await pools.name_of(db, request.pool_id)
    fields = {name: getattr(request, name) for name in CallbackOut.model_fields if name != "pool"}
    data = CallbackOut.model_validate({**fields, "pool": pool}).model_dump(mode="json")
    # The outcome this event reports, which a later event may supersede.
    data["status"] = subject.partition(":")[2] or data["status"]
    visit = await sessions.get(db, request.session_id) if request.session_id else None
    return {**data, **_channel(visit), **_visit(visit)}


def _channel(visit: VisitorSession | None) -> dict[str, Any]:
    return {
        "source": visit.source if visit else None,
        "medium": visit.medium if visit else None,
        "campaign": visit.campaign if visit else None,
    }


async def _session(db: AsyncSession, subject: str) -> dict[str, Any] | None:
    visit = await sessions.get(db, subject)
    if visit is None:
        return None
    return {
        "session_id": visit.id,
        "created_at": visit.created_at.isoformat().replace("+00:00", "Z"),
        **_channel(visit),
        "landing_page": visit.landing_page,
        **_visit(visit),
    }


async def render(
    db: AsyncSession, *, event_id: str, kind: str, subject: str, created_at: datetime
) -> Rendered | None:
    """The event's body as of now; None when its subject no longer exists."""
    ga: str | None = None
    data: dict[str, Any] | None
    if kind == outbox.CALL_COMPLETED:
        found = await _call(db, subject)
        data, ga = found if found is not None else (None, None)
    elif kind == outbox.CALLBACK_COMPLETED:
        data = await _callback(db, subject)
    elif kind == outbox.SESSION_CREATED:
        data = await _session(db, subject)
    else:
        return None
    if data is None:
        return None
    return Rendered(_envelope(event_id, kind, created_at, data), ga_client_id=ga)
