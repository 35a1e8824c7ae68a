"""Web-To-Call: a short-lived platform subscriber per request, tied to the visit exactly.

The page registers as the subscriber over SIP/WebSocket and calls; the platform then asks
our voice webhook with `Direction: subscriber` and `From` = the subscriber, and the
credential row says which visit and pool that is. The row is stored (and committed) before
the platform is asked to create the subscriber, so a subscriber never exists that the
clean-up (WebCallKeeper) does not know of.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from app.db.models import VisitorSession
from app.db.repositories import web_calls as repo
from app.errors import NotFound, RateLimited, Unavailable
from app.providers.voice.base import ProviderError, Subscriber, VoiceProvider
from app.services.pools import PoolConfig
from app.settings import Settings

log = logging.getLogger("calltrack.web_to_call")

SESSION_HEADER = "X-Calltrack-Session"
WINDOW = timedelta(hours=1)
KEEPER_BATCH = 50


@dataclass(frozen=True)
class Credentials:
    """What the page needs to register and dial; the password is shown this once."""

    session_id: str
    websocket_url: str
    username: str
    password: str = field(repr=False)
    realm: str
    expires_at: datetime

    @property
    def uri(self) -> str:
        """The subscriber's SIP URI."""
        return f"sip:{self.username}@{self.realm}"

    @property
    def dial(self) -> str:
        """What the page dials: the visit rides in it too, in case headers are dropped."""
        return f"sip:web-{self.session_id}@{self.realm}"


def new_identity() -> tuple[str, str]:
    """A random subscriber msisdn and SIP password."""
    return "wtc-" + secrets.token_hex(10), secrets.token_urlsafe(24)


async def _lock_visit(db: AsyncSession, session_id: str) -> None:
    # Serialises one visit's requests, so that the per-visit limit holds under a race.
    stmt = select(VisitorSession.id).where(VisitorSession.id == session_id)
    if db.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    if (await db.execute(stmt)).first() is None:
        raise NotFound(
            "session_id: unknown visit; ask /get_tracking_number first", field="session_id"
        )


async def issue(
    db: AsyncSession,
    *,
    provider: VoiceProvider,
    settings: Settings,
    session_id: str,
    pool: PoolConfig,
    now: datetime,
) -> Credentials:
    """Make a subscriber for this visit and hand its credentials out once."""
    websocket_url = settings.sip_websocket_url
    if websocket_url is None:
        raise Unavailable(
            "Web-To-Call is not configured: set CALLTRACK_CLOUDONIX_WEBSOCKET_URL",
            field="pool",
        )
    await _lock_visit(db, session_id)
    count, oldest = await repo.issued_since(db, session_id, now - WINDOW)
    if count >= settings.web_to_call_session_limit and oldest is not None:
        wait = max(1, int((oldest + WINDOW - now).total_seconds()) + 1)
        raise RateLimited(
            "session_id: this visit asked for browser-call credentials too often; retry later",
            field="session_id",
            headers={"Retry-After": str(wait)},
            retry_after=wait,
        )
    msisdn, password = new_identity()
    expires_at = now + timedelta(seconds=settings.web_to_call_ttl_seconds)
    await repo.add(
        db,
        msisdn=msisdn,
        session_id=session_id,
        pool_id=pool.id,
        created_at=now,
        expires_at=expires_at,
    )
    await db.commit()
    profile = {"calltrack-session": session_id, "calltrack-pool": pool.name}
    try:
        await provider.create_subscriber(Subscriber(msisdn, password, profile))
    except ProviderError as exc:
        log.warning("web-to-call: the platform did not create a subscriber (%s)", exc)
        raise Unavailable(
            "the voice platform could not make browser-call credentials; try again shortly",
            headers={"Retry-After": "5"},
        ) from exc
    return Credentials(
        session_id=session_id,
        websocket_url=websocket_url,
        username=msisdn,
        password=password,
        realm=settings.voice_domain,
        expires_at=expires_at,
    )


class WebCallKeeper:
    """Deletes subscribers whose call ended or that expired unused."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider: VoiceProvider,
        clock: Clock,
        every: float = 15.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.provider = provider
        self.clock = clock
        self.every = every

    async def run_once(self) -> int:
        """Delete what is due now; how many subscribers were deleted."""
        async with self.sessionmaker() as db:
            due = await repo.to_delete(db, now=self.clock(), limit=KEEPER_BATCH)
        deleted = 0
        for msisdn in due:
            try:
                await self.provider.delete_subscriber(msisdn)
            except ProviderError as exc:
                log.warning("web-to-call: subscriber not deleted yet (%s); retried later", exc)
                continue
            async with self.sessionmaker() as db:
                await repo.mark_deleted(db, msisdn, self.clock())
                await db.commit()
            deleted += 1
        return deleted

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every `every` seconds until `stop` is set."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("web-to-call: clean-up round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.every)
