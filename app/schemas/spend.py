"""Ops API payloads for media spend: what each source, medium and campaign cost per day."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

MAX_ROWS = 50_000
# Cost is stored in micros in a BIGINT; a trillion units of any currency fits with room.
MAX_COST = Decimal("999999999999.999999")
MAX_CLICKS = 2**31 - 1  # INTEGER
MAX_IMPRESSIONS = 2**63 - 1  # BIGINT

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")


def _day(value: object) -> object:
    # Only an ISO calendar date: pydantic would also take a Unix timestamp or a datetime.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DAY.fullmatch(value.strip()):
        return value.strip()
    raise PydanticCustomError("date_format", "Input should be a date as YYYY-MM-DD")


def _currency(value: object) -> object:
    if not isinstance(value, str):
        return value  # refused as not a string
    code = value.strip().upper()
    if not _CURRENCY.fullmatch(code):
        raise PydanticCustomError("currency", "Input should be an ISO 4217 code, e.g. USD")
    return code


Day = Annotated[date, BeforeValidator(_day)]
Source = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
Cost = Annotated[
    Decimal,
    Field(ge=0, le=MAX_COST, decimal_places=6, allow_inf_nan=False),
]
# The validator runs first (it upper-cases); the pattern is what the contract shows.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), BeforeValidator(_currency)]
Clicks = Annotated[int, Field(ge=0, le=MAX_CLICKS)]
Impressions = Annotated[int, Field(ge=0, le=MAX_IMPRESSIONS)]


class SpendRow(BaseModel):
    """What one source, medium and campaign cost on one day."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "day": "2026-11-26",
                    "source": "google",
                    "medium": "cpc",
                    "campaign": "winter-sale",
                    "cost": "125.40",
                    "currency": "USD",
                    "clicks": 310,
                    "impressions": 12800,
                }
            ]
        },
    )

    day: Day = Field(description="The day the money was spent, as YYYY-MM-DD.")
    source: Source = Field(description="As sessions name it, e.g. google.")
    medium: Label | None = Field(default=None, description="Absent, null and '' are the same.")
    campaign: Label | None = Field(default=None, description="Absent, null and '' are the same.")
    cost: Cost = Field(
        description="A decimal number or string with at most 6 decimal places, never negative."
    )
    currency: Currency = Field(description="ISO 4217 code, e.g. USD; lower case is accepted.")
    clicks: Clicks | None = None
    impressions: Impressions | None = None


class SpendImport(BaseModel):
    """Spend rows to add or replace, keyed by day, source, medium and campaign."""

    model_config = ConfigDict(extra="forbid")

    rows: Annotated[list[SpendRow], Field(min_length=1, max_length=MAX_ROWS)]


class SpendImported(BaseModel):
    """What an import did: every row received is exactly one of the three."""

    received: int
    inserted: int = Field(description="Keys not stored before.")
    updated: int = Field(description="Stored keys whose cost, currency or counts changed.")
    unchanged: int = Field(description="Stored keys imported with the very same values.")


class SpendOut(BaseModel):
    """A stored spend row."""

    day: date
    source: str
    medium: str = Field(description="'' when the import gave none.")
    campaign: str = Field(description="'' when the import gave none.")
    cost: str = Field(
        description="Exact decimal string, at least 2 decimal places, e.g. 12.50.",
        examples=["12.50"],
    )
    cost_micros: int = Field(description="The cost in millionths of the currency unit.")
    currency: str
    clicks: int | None
    impressions: int | None
    created_at: datetime
    updated_at: datetime


class SpendPage(BaseModel):
    """A page of spend rows, by day, source, medium and campaign."""

    items: list[SpendOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
