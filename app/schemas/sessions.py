"""Ops API payloads for visitor sessions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class LeaseOut(BaseModel):
    """One lease of the session."""

    number: str
    pool: str
    started_at: datetime
    ends_at: datetime
    live: bool


class SessionContext(BaseModel):
    """Marketing context as first captured."""

    landing_url: str | None
    referrer: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    gclid: str | None
    gbraid: str | None
    wbraid: str | None
    msclkid: str | None
    fbclid: str | None
    ga_client_id: str | None
    user_agent: str | None
    ip_hash: str | None = Field(description="Keyed hash of the IP; null without an IP hash key.")


class Prospect(BaseModel):
    """What the visitor told us in a form."""

    email: str | None
    phone: str | None
    fullname: str | None


class SessionOut(BaseModel):
    """A visitor session with its context and leases."""

    session_id: str
    created_at: datetime
    last_seen_at: datetime
    site_key: str | None = Field(description="Name of the site key the backend used, if any.")
    context: SessionContext
    prospect: Prospect
    leases: list[LeaseOut]
