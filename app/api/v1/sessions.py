"""Ops API: visitor sessions."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import AdminDep, NowDep, SessionDep
from app.schemas.problem import problem_responses
from app.schemas.sessions import LeaseOut, Prospect, SessionContext, SessionOut
from app.services import sessions

router = APIRouter(
    prefix="/v1/sessions",
    tags=["sessions"],
    dependencies=[AdminDep],
    responses=problem_responses(401, 503),
)


@router.get("/{session_id}", response_model=SessionOut, responses=problem_responses(404))
async def get_session(session_id: str, db: SessionDep, now: NowDep) -> SessionOut:
    """A visitor session with its marketing context, prospect details and leases."""
    visit, key_name, leases = await sessions.get_with_leases(db, session_id)
    return SessionOut(
        session_id=visit.id,
        created_at=visit.created_at,
        last_seen_at=visit.last_seen_at,
        site_key=key_name,
        context=SessionContext.model_validate(visit, from_attributes=True),
        prospect=Prospect.model_validate(visit, from_attributes=True),
        leases=[
            LeaseOut(
                number=e164,
                pool=pool_name,
                started_at=lease.started_at,
                ends_at=lease.ends_at,
                live=sessions.is_live(lease, now),
            )
            for lease, e164, pool_name in leases
        ],
    )
