"""Ops API: site keys of website backends."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import AdminDep, NowDep, SessionDep
from app.db.models import SiteKey
from app.schemas.problem import problem_responses
from app.schemas.site_keys import SiteKeyCreate, SiteKeyCreated, SiteKeyOut
from app.services import site_keys

router = APIRouter(
    prefix="/v1/site-keys",
    tags=["site keys"],
    dependencies=[AdminDep],
    responses=problem_responses(401, 503),
)


def _out(key: SiteKey) -> SiteKeyOut:
    return SiteKeyOut(
        id=key.id,
        name=key.name,
        prefix=key.key_prefix,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SiteKeyCreated,
    responses=problem_responses(422),
)
async def create_site_key(body: SiteKeyCreate, db: SessionDep, now: NowDep) -> SiteKeyCreated:
    """Issue a key for a website backend; the secret is in this answer only."""
    key, secret = await site_keys.issue(db, name=body.name, now=now)
    return SiteKeyCreated(**_out(key).model_dump(), key=secret)


@router.get("", response_model=list[SiteKeyOut])
async def list_site_keys(db: SessionDep) -> list[SiteKeyOut]:
    """Every site key (never the secrets)."""
    return [_out(k) for k in await site_keys.list_all(db)]


@router.delete("/{key_id}", response_model=SiteKeyOut, responses=problem_responses(404))
async def revoke_site_key(key_id: int, db: SessionDep, now: NowDep) -> SiteKeyOut:
    """Revoke a site key."""
    return _out(await site_keys.revoke(db, key_id=key_id, now=now))
