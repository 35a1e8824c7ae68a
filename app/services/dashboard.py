"""The ops dashboard's figures for a window of local days ending today."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import dashboard as repo
from app.db.repositories import numbers
from app.db.repositories import reports as report_repo
from app.errors import InvalidInput
from app.services import call_log, pools, reports, sizing

MAX_DAYS = 366
TOP_SOURCES = 6
LATEST = 20
_CURRENCY = re.compile(r"[A-Za-z]{3}")


@dataclass(frozen=True)
class Window:
    """Local days first..last in `tz`, today last; `edges` are the days' starts in UTC and
    the end of the last, so day i is [edges[i], edges[i + 1])."""

    days: int
    tz: str
    first: date
    last: date
    edges: list[datetime]

    @property
    def dates(self) -> list[date]:
        """Each day of the window, in order."""
        return [self.first + timedelta(days=i) for i in range(self.days)]


@dataclass(frozen=True)
class SourceSeries:
    """Calls per day of one source (None: calls without one); `other` folds the rest."""

    source: str | None
    calls: list[int]
    other: bool = False


@dataclass(frozen=True)
class CampaignCost:
    """A campaign's calls and spend in the window (None: calls or spend without one)."""

    campaign: str | None
    calls: int
    spend: Decimal | None
    cost_per_call: Decimal | None


@dataclass(frozen=True)
class PoolUse:
    """A pool's numbers, their use in the window, and what the sizing recommends."""

    name: str
    size: int
    leased_now: int
    peak: int
    leases_started: int
    recommended: int
    fallbacks: int


@dataclass(frozen=True)
class LatestCall:
    """One recent call as the page shows it: the caller masked, times in the zone."""

    started: datetime
    tracking_number: str
    caller: str
    source: str | None
    medium: str | None
    campaign: str | None
    status: str
    answered: bool
    talk_seconds: int | None
    attribution: str


@dataclass(frozen=True)
class Figures:
    """Everything the dashboard shows."""

    window: Window
    sources: list[SourceSeries]
    answered: list[int]
    missed: list[int]
    currency: str | None
    other_currencies: list[str]
    spend: Decimal | None
    cost_per_call: Decimal | None
    campaigns: list[CampaignCost]
    pools: list[PoolUse]
    latest: list[LatestCall]

    @property
    def calls(self) -> int:
        """Calls in the window."""
        return sum(self.answered) + sum(self.missed)


def window(*, days: str, tz: str, now: datetime) -> Window:
    """The last `days` local days in zone `tz`, today included; 422 naming a bad field."""
    # Length first: int() refuses (ValueError) strings of thousands of digits.
    if not (days.isascii() and days.isdigit() and len(days) <= 3) or not 1 <= int(days) <= MAX_DAYS:
        raise InvalidInput(
            f"query.days: a whole number of days from 1 to {MAX_DAYS}", field="query.days"
        )
    if len(tz) > 64:
        raise InvalidInput("query.tz: an IANA time zone, e.g. Europe/London", field="query.tz")
    zone = reports.zone(tz)
    count = int(days)
    last = now.astimezone(zone).date()
    first = last - timedelta(days=count - 1)
    edges = [
        datetime.combine(first + timedelta(days=i), time(), tzinfo=zone).astimezone(UTC)
        for i in range(count + 1)
    ]
    return Window(days=count, tz=tz, first=first, last=last, edges=edges)


def currency(value: str | None) -> str | None:
    """A currency the page was asked to show spend in, or a 422 naming it."""
    if value is None or value == "":
        return None
    if not _CURRENCY.fullmatch(value):
        raise InvalidInput("query.currency: three letters, e.g. USD", field="query.currency")
    return value.upper()


def mask(number: str) -> str:
    """A phone number reduced to its last four digits: the page shows no caller in full."""
    digits = "".join(c for c in number if c in string.digits)
    return "\u2022\u2022\u2022 " + digits[-4:] if len(digits) >= 6 else "withheld"


def _sources(counts: Sequence[repo.DayCount], days: int) -> list[SourceSeries]:
    totals: dict[str | None, int] = {}
    for count in counts:
        totals[count.source] = totals.get(count.source, 0) + count.calls
    ranked = sorted(totals, key=lambda s: (-totals[s], s is None, s or ""))
    # With one source beyond the top six it is shown itself, not as an "other" of one.
    shown = set(ranked if len(ranked) <= TOP_SOURCES + 1 else ranked[:TOP_SOURCES])
    series = {s: SourceSeries(source=s, calls=[0] * days) for s in ranked if s in shown}
    rest = SourceSeries(source=None, calls=[0] * days, other=True)
    for count in counts:
        (series[count.source] if count.source in shown else rest).calls[count.day] += count.calls
    return [*series.values(), *([rest] if any(rest.calls) else [])]


def _campaigns(report: reports.Report) -> list[CampaignCost]:
    rows = [
        CampaignCost(
            campaign=row.group,
            calls=row.calls.calls,
            spend=reports.money(row.spend_micros) if row.spend_micros is not None else None,
            cost_per_call=row.cost_per(row.calls.calls),
        )
        for row in report.rows
        if row.calls.calls or row.spend_micros
    ]
    # Costed campaigns dearest first, then spend that brought no call, then calls not costed.
    return sorted(
        rows,
        key=lambda r: (
            0 if r.cost_per_call is not None else 1 if r.spend else 2,
            -(r.cost_per_call or r.spend or 0),
            -r.calls,
            r.campaign or "",
        ),
    )


async def _pools(db: AsyncSession, start: datetime, now: datetime) -> list[PoolUse]:
    seconds = max(1, math.ceil((now - start).total_seconds()))
    found = []
    for pool in await pools.list_all(db):
        measured = await sizing.size(db, pool=pool, window_seconds=seconds, now=now)
        found.append(
            PoolUse(
                name=pool.name,
                size=measured.size,
                leased_now=await numbers.count_leased(db, pool.id, now),
                peak=measured.peak_concurrent_leases,
                leases_started=measured.leases_started,
                recommended=measured.recommended_size,
                fallbacks=measured.fallbacks_total,
            )
        )
    return found


async def _latest(db: AsyncSession, span: Window) -> list[LatestCall]:
    zone = reports.zone(span.tz)
    rows, _ = await call_log.page(
        db,
        since=span.edges[0],
        until=span.edges[-1],
        pool=None,
        attribution=None,
        source=None,
        cursor=None,
        limit=LATEST,
    )
    return [
        LatestCall(
            started=call.started_at.astimezone(zone),
            # The dialled number is the business's own on an inbound call, else someone's.
            tracking_number=call.to_number
            if call.direction.startswith("inbound")
            else mask(call.to_number),
            caller=mask(call.from_number),
            source=call.source,
            medium=call.medium,
            campaign=call.campaign,
            status=call.status,
            # As the reports count it.
            answered=call.answered_at is not None or (call.talk_seconds or 0) > 0,
            talk_seconds=call.talk_seconds,
            attribution=call.attribution,
        )
        for call, _pool in rows
    ]


async def gather(
    db: AsyncSession, *, span: Window, wanted_currency: str | None, now: datetime
) -> Figures:
    """Every figure of the dashboard for the window."""
    counts = await repo.calls_by_day(db, span.edges)
    answered = [0] * span.days
    missed = [0] * span.days
    for count in counts:
        answered[count.day] += count.answered
        missed[count.day] += count.calls - count.answered
    found = await report_repo.spend_currencies(db, span.first, span.last)
    chosen = wanted_currency or (found[0] if found else None)
    report = await reports.attribution(
        db,
        first=span.first,
        last=span.last,
        tz_name=span.tz,
        dimension="campaign",
        currency=chosen,
    )
    totals = report.totals
    return Figures(
        window=span,
        sources=_sources(counts, span.days),
        answered=answered,
        missed=missed,
        currency=chosen,
        other_currencies=[c for c in found if c != chosen],
        spend=reports.money(totals.spend_micros) if totals.spend_micros is not None else None,
        cost_per_call=totals.cost_per(totals.calls.calls),
        campaigns=_campaigns(report),
        pools=await _pools(db, span.edges[0], now),
        latest=await _latest(db, span),
    )
