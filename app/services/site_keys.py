"""Site keys: website backends that may vouch for their visitor's IP and user agent."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import SiteKey
from app.db.repositories import site_keys
from app.errors import NotFound, Unauthorized

PREFIX = "ctk_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def issue(db: AsyncSession, *, name: str, now: datetime) -> tuple[SiteKey, str]:
    """Create a key; the secret is returned once and only its hash is stored."""
    secret = PREFIX + secrets.token_urlsafe(32)
    key = await site_keys.create(
        db, name=name, key_hash=_hash(secret), key_prefix=secret[:12], now=now
    )
    return key, secret


async def verify(db: AsyncSession, presented: str) -> SiteKey:
    """The live key matching a presented secret, or Unauthorized.

    The lookup is by SHA-256 of the secret, so timing reveals nothing about stored keys.
    """
    key = await site_keys.find_live(db, _hash(presented))
    if key is None:
        raise Unauthorized("unknown or revoked site key", field="authorization")
    return key


async def list_all(db: AsyncSession) -> Sequence[SiteKey]:
    """Every site key."""
    return await site_keys.list_all(db)


async def revoke(db: AsyncSession, *, key_id: int, now: datetime) -> SiteKey:
    """Revoke a key; requests carrying it are refused from now on."""
    key = await site_keys.get(db, key_id)
    if key is None:
        raise NotFound(f"no site key {key_id}", field="key_id")
    if key.revoked_at is None:
        key.revoked_at = now
        await db.flush()
    return key
