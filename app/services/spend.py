"""Media spend: imports that add or replace rows all or none, and listings by day."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import MediaSpend
from app.db.repositories import spend
from app.db.repositories.spend import DEFAULT_BATCH, Key
from app.errors import InvalidInput
from app.schemas.spend import SpendRow

MICROS = 1_000_000
_MICROS = Decimal(MICROS)
_SHOWN_DUPLICATES = 20


@dataclass(frozen=True)
class Imported:
    """What an import did: every row received is exactly one of inserted/updated/unchanged."""

    received: int
    inserted: int
    updated: int
    unchanged: int


def to_micros(cost: Decimal) -> int:
    """A cost in millionths of the unit, exactly; more than 6 decimal places is an error."""
    if not cost.is_finite():
        raise ValueError(f"{cost} is not a finite number")
    micros = cost * _MICROS  # exact: the context keeps 28 digits, a cost has at most 18
    if micros != micros.to_integral_value():
        raise ValueError(f"{cost} has more than 6 decimal places")
    return int(micros)


def cost_text(micros: int) -> str:
    """Micros as an exact decimal string with 2 to 6 decimal places: 12500000 -> '12.50'."""
    units, fraction = divmod(micros, MICROS)
    digits = f"{fraction:06d}".rstrip("0").ljust(2, "0")
    return f"{units}.{digits}"


def key(row: SpendRow) -> Key:
    """The natural key of a row: an absent medium or campaign is ''."""
    return (row.day, row.source, row.medium or "", row.campaign or "")


def duplicates(rows: Sequence[SpendRow]) -> list[tuple[int, int]]:
    """(first position, repeated position) of every key given more than once."""
    seen: dict[Key, int] = {}
    found = []
    for index, row in enumerate(rows):
        first = seen.setdefault(key(row), index)
        if first != index:
            found.append((first, index))
    return found


def _values(row: SpendRow) -> dict[str, Any]:
    day, source, medium, campaign = key(row)
    return {
        "day": day,
        "source": source,
        "medium": medium,
        "campaign": campaign,
        "cost_micros": to_micros(row.cost),
        "currency": row.currency,
        "clicks": row.clicks,
        "impressions": row.impressions,
    }


def _refuse_duplicates(found: list[tuple[int, int]]) -> None:
    errors = [
        {
            "field": f"rows[{again}]",
            "message": f"the same day, source, medium and campaign as rows[{first}]",
        }
        for first, again in found[:_SHOWN_DUPLICATES]
    ]
    first, again = found[0]
    raise InvalidInput(
        f"rows[{again}]: the same day, source, medium and campaign as rows[{first}]",
        field=f"rows[{again}]",
        errors=errors,
        duplicate_count=len(found),
    )


async def import_rows(
    db: AsyncSession,
    rows: Sequence[SpendRow],
    *,
    now: datetime,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Imported:
    """Add or replace spend rows, all or none: the whole set is checked before any write.

    The caller commits; `progress` is told how many rows were written after each batch.
    """
    found = duplicates(rows)
    if found:
        _refuse_duplicates(found)
    values = []
    for index, row in enumerate(rows):
        try:
            values.append(_values(row))
        except ValueError as exc:  # a SpendRow built without validation
            raise InvalidInput(f"rows[{index}].cost: {exc}", field=f"rows[{index}].cost") from exc
    written = await spend.upsert(db, values, now=now, batch=batch, progress=progress)
    return Imported(
        received=len(rows),
        inserted=written.inserted,
        updated=written.updated,
        unchanged=len(rows) - written.inserted - written.updated,
    )


def encode_cursor(row: MediaSpend) -> str:
    """An opaque cursor after this row."""
    raw = json.dumps([row.day.isoformat(), row.source, row.medium, row.campaign])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Key:
    """The key a cursor points after."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        day, source, medium, campaign = json.loads(raw)
        if not all(isinstance(part, str) for part in (day, source, medium, campaign)):
            raise ValueError("not strings")
        return (date.fromisoformat(day), source, medium, campaign)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor: not a cursor this API gave out", field="query.cursor") from exc


async def page(
    db: AsyncSession,
    *,
    first_day: date,
    last_day: date,
    source: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[MediaSpend], str | None]:
    """Rows of the days first_day..last_day (inclusive), and the next page's cursor."""
    if last_day < first_day:
        raise InvalidInput("query.to: is before query.from", field="query.to")
    rows = await spend.page(
        db,
        first_day=first_day,
        last_day=last_day,
        source=source,
        after=decode_cursor(cursor) if cursor is not None else None,
        limit=limit + 1,
    )
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(rows[limit - 1])
