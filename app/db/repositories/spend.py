"""Media spend: idempotent upserts by (day, source, medium, campaign), and listings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Executable, Table, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import MediaSpend

# 10 values a row: 3,000 rows stay under SQLite's 32,766 variables and asyncpg's 32,767.
MAX_BATCH = 3000
DEFAULT_BATCH = 1000

KEY = ("day", "source", "medium", "campaign")
VALUES = ("cost_micros", "currency", "clicks", "impressions")

_TABLE = cast(Table, MediaSpend.__table__)
_KEY_COLUMNS = [_TABLE.c[name] for name in KEY]

Key = tuple[date, str, str, str]


@dataclass(frozen=True)
class Upserted:
    """Rows written by an upsert; the rest were stored already with the same values."""

    inserted: int
    updated: int


def _statements(insert: postgresql.Insert | sqlite.Insert) -> tuple[Executable, Executable]:
    # Built once: executed with a list of rows, SQLAlchemy sends each batch as one
    # multi-row INSERT ("insertmanyvalues") from a statement compiled once.
    add = insert.on_conflict_do_nothing(index_elements=list(KEY)).returning(*_KEY_COLUMNS)
    new = insert.excluded
    change = insert.on_conflict_do_update(
        index_elements=list(KEY),
        set_={name: new[name] for name in (*VALUES, "updated_at")},
        where=or_(*(_TABLE.c[name].is_distinct_from(new[name]) for name in VALUES)),
    ).returning(_TABLE.c.id)
    return add, change


_UPSERT = {
    "postgresql": _statements(postgresql.insert(_TABLE)),
    "sqlite": _statements(sqlite.insert(_TABLE)),
}


def key_of(row: Mapping[str, Any]) -> Key:
    """The natural key of a row's values."""
    return (row["day"], row["source"], row["medium"], row["campaign"])


async def upsert(
    db: AsyncSession,
    rows: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Upserted:
    """Insert new keys, update stored keys whose values differ, leave the rest untouched.

    Each batch is two statements: INSERT ... ON CONFLICT DO NOTHING RETURNING the keys it
    inserted, then, for the other rows only, INSERT ... ON CONFLICT DO UPDATE ... WHERE the
    values differ RETURNING the rows it changed. A row imported again with its stored values
    matches neither, so it is counted unchanged and keeps its updated_at. The keys of `rows`
    must be unique (the service checks).
    """
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be 1 to {MAX_BATCH}")
    conn = await db.connection()
    add, change = _UPSERT[conn.dialect.name]
    options = {"insertmanyvalues_page_size": batch}
    # In key order: concurrent imports of overlapping keys then lock them in much the same
    # order, which makes a deadlock (one import fails, nothing of it stored) unlikely.
    rows = sorted(rows, key=key_of)
    inserted = updated = 0
    for start in range(0, len(rows), batch):
        values = [
            {**row, "created_at": now, "updated_at": now} for row in rows[start : start + batch]
        ]
        added = await conn.execute(add, values, execution_options=options)
        new_keys = {tuple(r) for r in added}
        inserted += len(new_keys)
        stored = [v for v in values if key_of(v) not in new_keys]
        if stored:
            changed = await conn.execute(change, stored, execution_options=options)
            updated += len(changed.all())
        if progress is not None:
            progress(min(start + batch, len(rows)))
    return Upserted(inserted=inserted, updated=updated)


async def page(
    db: AsyncSession,
    *,
    first_day: date,
    last_day: date,
    source: str | None,
    after: Key | None,
    limit: int,
) -> Sequence[MediaSpend]:
    """Rows of the days first_day..last_day (inclusive), by day, source, medium, campaign."""
    stmt = select(MediaSpend).where(MediaSpend.day >= first_day, MediaSpend.day <= last_day)
    if source is not None:
        stmt = stmt.where(MediaSpend.source == source)
    order = (MediaSpend.day, MediaSpend.source, MediaSpend.medium, MediaSpend.campaign)
    if after is not None:
        types = [column.type for column in _KEY_COLUMNS]
        stmt = stmt.where(tuple_(*order) > tuple_(*after, types=types))
    return (await db.scalars(stmt.order_by(*order).limit(limit))).all()
