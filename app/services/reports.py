"""The attribution report: visits, leases, calls, callbacks and spend per channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import reports
from app.db.repositories.reports import CallFigures, Dimension, Key
from app.errors import InvalidInput

MAX_DAYS = 400
MICROS = Decimal(1_000_000)
CENT = Decimal("0.01")


@dataclass
class Row:
    """One group's figures; money in micros of the report's currency."""

    group: Key
    sessions: int = 0
    numbers_leased: int = 0
    calls: CallFigures = field(default_factory=CallFigures)
    callbacks_requested: int = 0
    callbacks_completed: int = 0
    spend_micros: int | None = None

    @property
    def avg_talk_seconds(self) -> float | None:
        """Mean talk time of the answered calls."""
        if not self.calls.answered:
            return None
        return round(self.calls.talk_seconds / self.calls.answered, 1)

    def cost_per(self, count: int) -> Decimal | None:
        """Spend divided by `count` (calls, first-time calls), to the cent."""
        if self.spend_micros is None or not count:
            return None
        return money(self.spend_micros / Decimal(count))

    def add(self, other: Row) -> None:
        """Fold another group into this one (for the totals)."""
        self.sessions += other.sessions
        self.numbers_leased += other.numbers_leased
        self.calls.calls += other.calls.calls
        self.calls.first_time += other.calls.first_time
        self.calls.answered += other.calls.answered
        self.calls.talk_seconds += other.calls.talk_seconds
        self.callbacks_requested += other.callbacks_requested
        self.callbacks_completed += other.callbacks_completed
        if other.spend_micros is not None:
            self.spend_micros = (self.spend_micros or 0) + other.spend_micros


@dataclass
class Report:
    """The report's groups, busiest first, and their totals."""

    first: date
    last: date
    tz: str
    start: datetime
    end: datetime
    dimension: Dimension
    currency: str | None
    rows: list[Row]
    totals: Row


def money(micros: Decimal | int) -> Decimal:
    """Micros as an amount to the cent, half up."""
    return (Decimal(micros) / MICROS).quantize(CENT, rounding=ROUND_HALF_UP)


def zone(name: str) -> ZoneInfo:
    """An IANA time zone, or a 422 naming `query.tz`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"query.tz: unknown time zone {name!r}", field="query.tz") from exc


def bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants the local days first..last cover: [start, end) in UTC."""
    if last < first:
        raise InvalidInput("query.to: before query.from", field="query.to")
    if (last - first).days >= MAX_DAYS:
        raise InvalidInput(f"query.to: at most {MAX_DAYS} days per report", field="query.to")
    start = datetime.combine(first, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    return start, end


async def _currency(db: AsyncSession, first: date, last: date, wanted: str | None) -> str | None:
    if wanted is not None:
        return wanted.upper()
    found = await reports.spend_currencies(db, first, last)
    if len(found) > 1:
        raise InvalidInput(
            f"query.currency: spend was imported in {', '.join(found)}; choose one",
            field="query.currency",
        )
    return found[0] if found else None


async def attribution(
    db: AsyncSession,
    *,
    first: date,
    last: date,
    tz_name: str,
    dimension: Dimension,
    currency: str | None,
) -> Report:
    """Every figure of the attribution report for local days first..last."""
    tz = zone(tz_name)
    start, end = bounds(first, last, tz)
    chosen = await _currency(db, first, last, currency)
    rows: dict[Key, Row] = {}

    def row(key: Key) -> Row:
        return rows.setdefault(key, Row(group=key))

    for key, count in (await reports.sessions(db, dimension, start, end)).items():
        row(key).sessions = count
    for key, count in (await reports.leases(db, dimension, start, end)).items():
        row(key).numbers_leased = count
    for key, figures in (await reports.calls(db, dimension, start, end)).items():
        row(key).calls = figures
    for key, (requested, completed) in (await reports.callbacks(db, dimension, start, end)).items():
        row(key).callbacks_requested = requested
        row(key).callbacks_completed = completed
    if chosen is not None:
        # Spend is by the ad platform's day, which the import names: no time zone applies.
        for key, micros in (await reports.spend(db, dimension, first, last, chosen)).items():
            row(key).spend_micros = micros
    ordered = sorted(
        rows.values(), key=lambda r: (-r.calls.calls, -r.sessions, r.group is None, r.group or "")
    )
    totals = Row(group=None)
    for item in ordered:
        totals.add(item)
    return Report(
        first=first,
        last=last,
        tz=tz_name,
        start=start,
        end=end,
        dimension=dimension,
        currency=chosen,
        rows=ordered,
        totals=totals,
    )
