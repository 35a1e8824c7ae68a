"""Ops API payloads for pools and their numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.schemas.public import POOL_NAME_PATTERN

PoolName = Annotated[str, StringConstraints(pattern=POOL_NAME_PATTERN)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Ttl = Annotated[int, Field(ge=1, le=7 * 86400)]
Cooldown = Annotated[int, Field(ge=0, le=30 * 86400)]
MatchWindow = Annotated[int, Field(ge=0, le=30 * 86400)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ClockTime = Annotated[str, StringConstraints(pattern=r"^\d{1,2}:\d{2}$")]
Region = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]
Agents = Annotated[list[Phone], Field(max_length=20)]
Countries = Annotated[list[Region], Field(min_length=1, max_length=250)]


class BusinessHours(BaseModel):
    """When agents take callbacks: local opening intervals per weekday."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "timezone": "America/New_York",
                    "weekly": {"mon": [["09:00", "17:00"]], "sat": [["10:00", "14:00"]]},
                }
            ]
        },
    )

    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="An IANA time zone, e.g. America/New_York."
    )
    weekly: dict[Day, Annotated[list[tuple[ClockTime, ClockTime]], Field(max_length=24)]] = Field(
        description="Per day, [start, end) intervals in local time; a missing day is closed."
    )


_AGENTS_DOC = "Phones rung in order for a callback; empty rings the destination."
_HOURS_DOC = "When callbacks are placed; null means always. Off-hours requests wait."
_COUNTRIES_DOC = "ISO country codes callbacks may call; null means the service default."


class PoolCreate(BaseModel):
    """A new pool."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "default",
                    "destination": "+12125550100",
                    "fallback_number": "+12125550100",
                    "lease_ttl_seconds": 1800,
                    "cooldown_seconds": 900,
                    "match_window_seconds": 900,
                }
            ]
        },
    )

    name: PoolName
    destination: Phone = Field(description="Where calls to the pool's numbers are forwarded.")
    fallback_number: Phone = Field(description="Shown when no tracking number is free.")
    lease_ttl_seconds: Ttl = 1800
    cooldown_seconds: Cooldown = 900
    match_window_seconds: MatchWindow | None = Field(
        default=None,
        description="A call this long after a lease ended still goes to its session. "
        "At most the cooldown; default the smaller of the cooldown and 900.",
    )
    whisper: bool = Field(default=False, description="Tell the agent the call's source first.")
    record_calls: bool = Field(default=False, description="Record forwarded calls.")
    source: Label | None = Field(
        default=None,
        description="For a static pool (print, radio, a listing): credit its calls here.",
    )
    medium: Label | None = None
    campaign: Label | None = None
    agents: Agents = Field(default_factory=list, description=_AGENTS_DOC)
    business_hours: BusinessHours | None = Field(default=None, description=_HOURS_DOC)
    callback_countries: Countries | None = Field(default=None, description=_COUNTRIES_DOC)


class PoolUpdate(BaseModel):
    """Fields of a pool to change."""

    model_config = ConfigDict(extra="forbid")

    destination: Phone | None = None
    fallback_number: Phone | None = None
    lease_ttl_seconds: Ttl | None = None
    cooldown_seconds: Cooldown | None = None
    match_window_seconds: MatchWindow | None = None
    whisper: bool | None = None
    record_calls: bool | None = None
    source: Label | None = Field(default=None, description="null clears it.")
    medium: Label | None = None
    campaign: Label | None = None
    agents: Agents | None = Field(default=None, description=_AGENTS_DOC)
    business_hours: BusinessHours | None = Field(default=None, description=_HOURS_DOC)
    callback_countries: Countries | None = Field(default=None, description=_COUNTRIES_DOC)


class PoolOut(BaseModel):
    """A pool as stored."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    destination: str
    fallback_number: str
    lease_ttl_seconds: int
    cooldown_seconds: int
    match_window_seconds: int
    whisper: bool
    record_calls: bool
    source: str | None
    medium: str | None
    campaign: str | None
    agents: list[str]
    business_hours: dict[str, object] | None
    callback_countries: list[str] | None
    created_at: datetime
    updated_at: datetime


class NumbersAdd(BaseModel):
    """Numbers to add to a pool."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"numbers": ["+12565550101"]}]}
    )

    numbers: Annotated[list[Phone], Field(min_length=1, max_length=10_000)]


class NumbersAdded(BaseModel):
    """How many numbers were added."""

    pool: str
    added: int
    reactivated: int = Field(description="Retired numbers brought back into service.")


class PoolStats(BaseModel):
    """Use of a pool now and over a window."""

    pool: str
    size: int = Field(description="Active numbers.")
    leased_now: int
    utilisation: float = Field(description="leased_now / size.")
    window_seconds: int
    since: datetime
    until: datetime
    leases_started: int
    fallbacks_total: int
    fallbacks_by_reason: dict[str, int]
    peak_concurrent_leases: int
    peak_utilisation: float


class PoolSizing(BaseModel):
    """How many numbers the pool needs, from the traffic of a window ending now.

    By Little's law, numbers unavailable on average = arrival rate x hold time, where a lease
    holds its number from its start to its end (or now, if still running) and then for the
    cooldown. The recommendation keeps that average under the target utilisation, and is never
    below the most leases ever held at once in the window (bursts need them all).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pool": "default",
                    "window_seconds": 86400,
                    "since": "2026-11-25T12:00:00Z",
                    "until": "2026-11-26T12:00:00Z",
                    "size": 20,
                    "leases_started": 2880,
                    "arrivals_per_hour": 120.0,
                    "mean_hold_seconds": 1500.0,
                    "mean_lease_seconds": 600.0,
                    "average_busy_numbers": 50.0,
                    "turned_away_visits": 0,
                    "average_demand_numbers": 50.0,
                    "target_utilisation": 0.75,
                    "recommended_size": 67,
                    "add_numbers": 47,
                    "peak_concurrent_leases": 20,
                    "fallbacks_total": 310,
                    "fallbacks_by_reason": {"pool_exhausted": 290, "bot": 20},
                    "fallback_rate": 0.0972,
                }
            ]
        }
    )

    pool: str
    window_seconds: int
    since: datetime
    until: datetime
    size: int = Field(description="Active numbers now.")
    leases_started: int = Field(
        description="New leases begun in the window; renewals extend a lease, not add one."
    )
    arrivals_per_hour: float = Field(description="leases_started per hour of the window.")
    mean_hold_seconds: float = Field(
        description="Mean time a lease keeps its number unavailable: mean_lease_seconds plus "
        "the pool's cooldown. 0 without leases."
    )
    mean_lease_seconds: float = Field(
        description="Mean time from a lease's start to its end (or now, if still running), "
        "renewals included."
    )
    average_busy_numbers: float = Field(
        description="Numbers unavailable on average (Little's law): arrival rate x "
        "mean_hold_seconds."
    )
    turned_away_visits: int = Field(
        description="Visits refused a number (pool exhausted or empty, not bots) that got none "
        "later in the window: demand the pool did not serve."
    )
    average_demand_numbers: float = Field(
        description="average_busy_numbers plus the turned-away visits, each holding a number "
        "for mean_hold_seconds (the pool's TTL plus cooldown when no lease was seen)."
    )
    target_utilisation: float = Field(
        description="Share of the pool the average may keep busy, leaving room for bursts."
    )
    recommended_size: int = Field(
        description="The larger of ceil(average_demand_numbers / target_utilisation) and "
        "peak_concurrent_leases; at least 1 once anyone wanted a number, 0 without traffic."
    )
    add_numbers: int = Field(description="max(0, recommended_size - size).")
    peak_concurrent_leases: int = Field(description="Most leases alive at once in the window.")
    fallbacks_total: int = Field(description="Fallback numbers served in the window.")
    fallbacks_by_reason: dict[str, int]
    fallback_rate: float = Field(
        description="fallbacks_total / (fallbacks_total + leases_started); every reason "
        "counts, bots included (see fallbacks_by_reason). 0 without traffic."
    )


class PoolSnippet(BaseModel):
    """The script tag a website puts on its pages to show this pool's numbers."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pool": "default",
                    "src": "https://calltrack.example/dni.js",
                    "pinned": False,
                    "integrity": "sha384-…",
                    "gzip_bytes": 4954,
                    "html": '<script async src="https://calltrack.example/dni.js"'
                    ' data-pool="default" data-numbers="+12125550100"></script>',
                }
            ]
        }
    )

    pool: str
    src: str = Field(
        description="The script's URL: revalidated every 5 minutes, or, pinned, "
        "`?v=<version>` cached for a year."
    )
    pinned: bool = Field(description="Whether the tag pins this version with `integrity`.")
    integrity: str = Field(description="Subresource Integrity digest of the current version.")
    gzip_bytes: int = Field(description="What a browser downloads.")
    html: str = Field(description="The tag to paste into every page, before </body>.")
