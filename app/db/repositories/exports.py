"""Export queries: the rows an ad platform's import file is made of."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.db.models import Call, VisitorSession

ClickKind = Literal["gclid", "gbraid", "wbraid"]


@dataclass(frozen=True)
class ClickedCall:
    """A call credited to a visit that came from a Google ad click."""

    call_id: int
    started_at: datetime
    kind: ClickKind
    click_id: str


def _present(column: Any) -> ColumnElement[Any]:
    """The click id, or NULL when it is missing, empty or blank."""
    value: ColumnElement[Any] = func.nullif(func.trim(column), "")
    return value


async def google_ads_calls(
    db: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    min_talk_seconds: int,
    first_time_only: bool,
) -> list[ClickedCall]:
    """Calls that started in [start, end), talked at least `min_talk_seconds` and whose
    visit carries a Google click id, by start then id.

    A click conversion names exactly one click id (Google rejects a gbraid or wbraid next to
    a gclid, and a gbraid next to a wbraid), so the gclid wins, then the wbraid (the id of
    clicks on the web, which is where our visits happen), then the gbraid.
    """
    gclid, gbraid, wbraid = (
        _present(VisitorSession.gclid),
        _present(VisitorSession.gbraid),
        _present(VisitorSession.wbraid),
    )
    kind = case(
        (gclid.is_not(None), "gclid"),
        (wbraid.is_not(None), "wbraid"),
        (gbraid.is_not(None), "gbraid"),
    )
    click_id = func.coalesce(gclid, wbraid, gbraid)
    stmt = (
        select(Call.id, Call.started_at, kind, click_id)
        .join(VisitorSession, VisitorSession.id == Call.session_id)
        .where(
            Call.started_at >= start,
            Call.started_at < end,
            Call.talk_seconds >= min_talk_seconds,
            click_id.is_not(None),
        )
        .order_by(Call.started_at, Call.id)
    )
    if first_time_only:
        stmt = stmt.where(Call.first_time.is_(True))
    return [
        ClickedCall(
            call_id=int(call_id),
            started_at=started_at,
            kind=cast(ClickKind, found_kind),
            click_id=str(found_id),
        )
        for call_id, started_at, found_kind, found_id in (await db.execute(stmt)).all()
    ]
