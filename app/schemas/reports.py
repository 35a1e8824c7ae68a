"""Report payloads."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer

GroupBy = Literal["source", "medium", "campaign", "landing_page", "pool"]
# Money travels as a decimal string ("12.50"): exact, whatever the client's floats do.
Money = Annotated[Decimal, PlainSerializer(lambda v: f"{v:.2f}", return_type=str)]


class ReportFigures(BaseModel):
    """What one group (or the total) did in the period."""

    sessions: int = Field(description="Visits that began in the period (by pool: that leased).")
    numbers_leased: int = Field(description="Tracking-number leases that began in the period.")
    calls: int
    first_time_calls: int = Field(description="Calls from a caller id never seen before.")
    answered_calls: int
    avg_talk_seconds: float | None = Field(description="Mean talk time of answered calls.")
    callbacks_requested: int
    callbacks_completed: int
    spend: Money | None = Field(description="Imported spend; null where none was imported.")
    cost_per_call: Money | None
    cost_per_first_time_call: Money | None


class ReportRow(ReportFigures):
    """One group."""

    group: str | None = Field(description="The source, medium, campaign, page or pool; null: none.")


class AttributionReport(BaseModel):
    """Calls, callbacks and spend per source, medium, campaign, landing page or pool."""

    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    tz: str
    start: datetime = Field(description="The first instant counted (UTC).")
    end: datetime = Field(description="The first instant not counted (UTC).")
    group_by: GroupBy
    currency: str | None = Field(description="Of spend and costs; null when none was imported.")
    rows: list[ReportRow]
    totals: ReportFigures
