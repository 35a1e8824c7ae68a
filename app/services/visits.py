"""The visitor behind a request: who may vouch for it, and what we keep of it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import sessions
from app.services import marketing


@dataclass(frozen=True)
class Visitor:
    """The visitor as far as we can trust the caller."""

    ip: str | None
    user_agent: str | None
    site_key_id: int | None


def identify(
    *,
    site_key_id: int | None,
    context_ip: str | None,
    context_user_agent: str | None,
    peer_ip: str | None,
    header_user_agent: str | None,
) -> Visitor:
    """A site-keyed backend speaks for its visitor; a browser speaks for itself."""
    if site_key_id is not None:
        return Visitor(ip=context_ip, user_agent=context_user_agent, site_key_id=site_key_id)
    return Visitor(ip=peer_ip, user_agent=header_user_agent, site_key_id=None)


def rate_key(visitor: Visitor) -> str:
    """The key the public rate limit counts under: the visitor's IP where known."""
    if visitor.ip:
        return f"ip:{visitor.ip}"
    return f"site:{visitor.site_key_id}"


def hash_ip(ip: str | None, key: bytes | None) -> str | None:
    """A keyed hash of the IP, or nothing: without a key the IP is not kept at all."""
    if not ip or not key:
        return None
    return hmac.new(key, ip.encode(), hashlib.sha256).hexdigest()


def session_fields(
    *,
    context: Mapping[str, str | None],
    prospect: Mapping[str, str | None],
    visitor: Visitor,
    ip_hash_key: bytes | None,
) -> dict[str, str | None]:
    """What is stored with the session: context, prospect, user agent and hashed IP."""
    fields = {k: v for k, v in context.items() if k not in {"ip", "user_agent"}}
    fields.update(prospect)
    fields["user_agent"] = visitor.user_agent[:512] if visitor.user_agent else None
    fields["ip_hash"] = hash_ip(visitor.ip, ip_hash_key)
    fields.update(marketing.derived(context))
    return fields


async def refresh_channel(
    db: AsyncSession, session_id: str, fields: Mapping[str, str | None]
) -> None:
    """After a known session took new context, keep its report columns in step.

    Context is first touch, so this changes something only when the visit had no context
    of that kind yet (a backend's form without it, then the page with it).
    """
    if all(fields.get(key) is None for key in marketing.CHANNEL_INPUTS):
        return
    session = await sessions.get(db, session_id)
    if session is None:
        return
    wanted = marketing.derived({key: getattr(session, key) for key in marketing.CHANNEL_INPUTS})
    if any(getattr(session, key) != value for key, value in wanted.items()):
        await sessions.set_derived(db, session_id, wanted)
