"""Click-to-callback requests: take them in (with abuse limits), list them, cancel them."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import CallbackAttempt, CallbackRequest
from app.db.repositories import callbacks as repo
from app.db.repositories import pools, sessions
from app.errors import Conflict, InvalidInput, NotFound, RateLimited
from app.providers.voice.base import ProviderError, VoiceProvider
from app.services import cursors, hours, outbox, visits
from app.services.callback_flow import ACTIVE, LIVE_ATTEMPT, Policy, finish
from app.services.leasing import new_session_id
from app.services.phone import InvalidPhone, to_e164

PER_NUMBER_WINDOW = timedelta(hours=1)
# Numbers that cost the business money to call, or route somewhere nobody asked for: the
# toll-fraud favourites.
_REFUSED_TYPES = {
    phonenumbers.PhoneNumberType.PREMIUM_RATE: "premium-rate",
    phonenumbers.PhoneNumberType.SHARED_COST: "shared-cost",
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER: "personal (forwarding)",
    phonenumbers.PhoneNumberType.UAN: "universal access",
    phonenumbers.PhoneNumberType.PAGER: "pager",
    phonenumbers.PhoneNumberType.VOICEMAIL: "voicemail",
}


log = logging.getLogger("calltrack.callbacks")


async def hang_up(provider: VoiceProvider, call_id: str, *, reason: str) -> None:
    """End a callback's call that must not go on; a failure is logged, not raised.

    The call's next session update finds it abandoned and asks again.
    """
    try:
        await provider.hangup(call_id, reason=reason)
    except ProviderError as exc:
        log.warning("hanging up a callback's call failed: %s", exc)


def new_id() -> str:
    """An unguessable request id: the page polls its state by it."""
    return "cb_" + secrets.token_urlsafe(16)[:22]


def callable_number(raw: str, *, region: str, countries: Sequence[str]) -> str:
    """The number in E.164 if we may call it: valid, in an allowed country, not premium."""
    try:
        e164 = to_e164(raw, region=region)
    except InvalidPhone as exc:
        raise InvalidInput(f"phone: {exc}", field="phone") from exc
    parsed = phonenumbers.parse(e164, None)
    country = phonenumbers.region_code_for_number(parsed)
    if country not in countries:
        raise InvalidInput(
            f"phone: numbers in {country or 'that country'} are not called back here "
            f"(allowed: {', '.join(countries)})",
            field="phone",
        )
    refused = _REFUSED_TYPES.get(phonenumbers.number_type(parsed))
    if refused is not None:
        raise InvalidInput(f"phone: {refused} numbers are not called back", field="phone")
    return e164


@dataclass(frozen=True)
class Queued:
    """The request a form got: a new one, or the number's pending one."""

    request: CallbackRequest
    created: bool


async def request_callback(
    db: AsyncSession,
    *,
    pool_name: str,
    raw_phone: str,
    session_id: str | None,
    fields: Mapping[str, str | None],
    site_key_id: int | None,
    region: str,
    default_countries: Sequence[str],
    number_limit: int,
    policy: Policy,
    now: datetime,
) -> Queued:
    """Queue a callback, scheduled for the pool's next opening; one pending per number."""
    pool = await pools.get_by_name(db, pool_name)
    if pool is None:
        raise InvalidInput(f"pool {pool_name!r} does not exist", field="pool")
    phone = callable_number(
        raw_phone, region=region, countries=pool.callback_countries or default_countries
    )
    pending = await repo.pending_for_phone(db, phone)
    if pending is not None:
        return Queued(pending, created=False)
    oldest = await repo.oldest_since(db, phone=phone, since=now - PER_NUMBER_WINDOW)
    if oldest is not None and oldest[1] >= number_limit:
        wait = max(1, int((oldest[0] + PER_NUMBER_WINDOW - now).total_seconds()) + 1)
        raise RateLimited(
            "phone: this number was asked to be called back too often; retry later",
            field="phone",
            headers={"Retry-After": str(wait)},
            retry_after=wait,
        )
    prospect = {**fields, "phone": phone}
    if session_id is not None and await sessions.touch(
        db, session_id=session_id, now=now, fields=prospect
    ):
        await visits.refresh_channel(db, session_id, prospect)
    else:
        session_id = new_session_id()
        await sessions.create(
            db, session_id=session_id, now=now, site_key_id=site_key_id, fields=prospect
        )
        await outbox.session_created(db, session_id, now=now)
    scheduled = hours.next_opening(hours.parse(pool.business_hours), now)
    values = {
        "id": new_id(),
        "pool_id": pool.id,
        "session_id": session_id,
        "phone": phone,
        "status": "queued" if scheduled <= now else "scheduled",
        "attempts": 0,
        "agent_index": 0,
        "next_attempt_at": scheduled,
        "scheduled_for": scheduled,
        "expires_at": scheduled + policy.max_age,
        "created_at": now,
        "updated_at": now,
    }
    if not await repo.insert_unless_pending(db, values):
        # A concurrent form for the same number won the race: answer with its request.
        pending = await repo.pending_for_phone(db, phone)
        if pending is None:
            raise Conflict(
                "phone: a request for this number changed meanwhile; retry", field="phone"
            )
        return Queued(pending, created=False)
    request = await repo.get(db, str(values["id"]))
    assert request is not None
    return Queued(request, created=True)


async def get(db: AsyncSession, request_id: str) -> CallbackRequest:
    """The request, or NotFound."""
    request = await repo.get(db, request_id)
    if request is None:
        raise NotFound(f"callback {request_id!r} does not exist", field="callback_id")
    return request


async def detail(
    db: AsyncSession, request_id: str
) -> tuple[CallbackRequest, str, Sequence[CallbackAttempt]]:
    """The request, its pool's name and every attempt."""
    request = await get(db, request_id)
    pool = await repo.pool_of(db, request.pool_id)
    return request, pool.name, await repo.attempts_of(db, request_id)


async def cancel(db: AsyncSession, request_id: str, *, now: datetime) -> str | None:
    """Cancel a pending request; the call id to hang up when a call is under way."""
    request = await repo.get_for_update(db, request_id)
    if request is None:
        raise NotFound(f"callback {request_id!r} does not exist", field="callback_id")
    if request.status == "cancelled":
        return None
    if request.status not in ACTIVE:
        raise Conflict(f"callback {request_id!r} is already {request.status}", field="callback_id")
    finish(request, "cancelled", now)
    attempt = await repo.current_attempt(db, request)
    if attempt is None or attempt.status not in LIVE_ATTEMPT:
        return None
    attempt.status = "cancelled"
    attempt.ended_at = now
    # Without a call id yet, its first session update will find the request cancelled.
    return attempt.provider_call_id


def _request_id(text: str) -> str:
    if not text.startswith("cb_") or len(text) > 32:
        raise ValueError("not a callback id")
    return text


async def page(
    db: AsyncSession,
    *,
    since: datetime | None,
    until: datetime | None,
    pool: str | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[tuple[CallbackRequest, str]], str | None]:
    """Requests newest first, and the cursor of the next page (None at the end)."""
    if since is not None and until is not None and since >= until:
        raise InvalidInput("from must be before to", field="query.from")
    pool_id = None
    if pool is not None:
        found = await pools.get_by_name(db, pool)
        if found is None:
            raise InvalidInput(f"pool {pool!r} does not exist", field="query.pool")
        pool_id = found.id
    f = repo.RequestFilter(since=since, until=until, pool_id=pool_id, status=status)
    after = cursors.decode(cursor, _request_id) if cursor else None
    rows = await repo.page(db, f=f, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1][0] if more and rows else None
    return rows, cursors.encode(last.created_at, last.id) if last else None
