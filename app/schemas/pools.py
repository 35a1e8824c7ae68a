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
