"""Tables of the service."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
BigId = BigInteger().with_variant(Integer, "sqlite")

PHONE = 16  # "+" and at most 15 digits (E.164)


class Pool(Base):
    """A named set of tracking numbers that forward to one business destination."""

    __tablename__ = "pool"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    destination: Mapped[str] = mapped_column(String(PHONE))
    fallback_number: Mapped[str] = mapped_column(String(PHONE))
    lease_ttl_seconds: Mapped[int] = mapped_column(Integer)
    cooldown_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrackingNumber(Base):
    """A phone number of a pool and, on the row itself, its current lease."""

    __tablename__ = "tracking_number"
    __table_args__ = (
        # The claim reads free numbers of a pool in release order through this index.
        Index(
            "ix_tracking_number_claim",
            "pool_id",
            "available_at",
            postgresql_where=text("active"),
            sqlite_where=text("active"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No index of its own: the claim index leads with pool_id, and every extra index on
    # this table is rewritten by every lease.
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id"))
    e164: Mapped[str] = mapped_column(String(PHONE), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    leased_session_id: Mapped[str | None] = mapped_column(String(64))
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class VisitorSession(Base):
    """A website visit: its marketing context and the prospect's details when given."""

    __tablename__ = "visitor_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    site_key_id: Mapped[int | None] = mapped_column(ForeignKey("site_key.id"))
    landing_url: Mapped[str | None] = mapped_column(Text)
    referrer: Mapped[str | None] = mapped_column(Text)
    utm_source: Mapped[str | None] = mapped_column(String(255))
    utm_medium: Mapped[str | None] = mapped_column(String(255))
    utm_campaign: Mapped[str | None] = mapped_column(String(255))
    utm_term: Mapped[str | None] = mapped_column(String(255))
    utm_content: Mapped[str | None] = mapped_column(String(255))
    gclid: Mapped[str | None] = mapped_column(String(255))
    gbraid: Mapped[str | None] = mapped_column(String(255))
    wbraid: Mapped[str | None] = mapped_column(String(255))
    msclkid: Mapped[str | None] = mapped_column(String(255))
    fbclid: Mapped[str | None] = mapped_column(String(255))
    ga_client_id: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(PHONE), index=True)
    fullname: Mapped[str | None] = mapped_column(String(200))


class Lease(Base):
    """History: which session held which number, and when. Attribution reads this."""

    __tablename__ = "lease"
    __table_args__ = (
        Index("ix_lease_number_started", "number_id", "started_at"),
        Index("ix_lease_pool_started", "pool_id", "started_at"),
        # Two leases of one number may never overlap in time (PostgreSQL only).
        ExcludeConstraint(
            ("number_id", "="),
            (func.tstzrange(text("started_at"), text("ends_at")), "&&"),
            name="ex_lease_number_no_overlap",
            using="gist",
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number_id: Mapped[int] = mapped_column(ForeignKey("tracking_number.id"))
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id"))
    session_id: Mapped[str] = mapped_column(ForeignKey("visitor_session.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FallbackEvent(Base):
    """One answer that served the pool's fallback number instead of a tracking number."""

    __tablename__ = "fallback_event"
    __table_args__ = (Index("ix_fallback_event_pool_at", "pool_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id"))
    session_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SiteKey(Base):
    """A website backend's key: requests signed with it may vouch for the visitor's IP."""

    __tablename__ = "site_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
