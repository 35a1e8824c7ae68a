"""Tables of the service."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
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
    # A call this long after a lease ended is still credited to it; never above the cooldown,
    # so the window cannot reach into the number's next lease.
    match_window_seconds: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    whisper: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    record_calls: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Set for a static pool (print, radio, a listing): its calls are credited to this source.
    source: Mapped[str | None] = mapped_column(String(255))
    medium: Mapped[str | None] = mapped_column(String(255))
    campaign: Mapped[str | None] = mapped_column(String(255))
    # Click-to-callback: agents called in order (empty: the destination), the hours they
    # work (None: always), and the countries customers may be called in (None: the default).
    agents: Mapped[list[str]] = mapped_column(JSON, server_default=text("'[]'"))
    business_hours: Mapped[dict[str, object] | None] = mapped_column(JSON)
    callback_countries: Mapped[list[str] | None] = mapped_column(JSON)
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
    # The visit's channel and landing page as reports group them (services/marketing.py),
    # kept on the row so that reports aggregate in SQL.
    source: Mapped[str | None] = mapped_column(String(255))
    medium: Mapped[str | None] = mapped_column(String(255))
    campaign: Mapped[str | None] = mapped_column(String(255))
    landing_page: Mapped[str | None] = mapped_column(String(2048))


class Lease(Base):
    """History: which session held which number, and when. Attribution reads this."""

    __tablename__ = "lease"
    __table_args__ = (
        Index("ix_lease_number_started", "number_id", "started_at"),
        Index("ix_lease_pool_started", "pool_id", "started_at"),
        Index("ix_lease_started", "started_at"),
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


class Call(Base):
    """A phone call seen by the voice platform, attributed or not."""

    __tablename__ = "call"
    __table_args__ = (
        UniqueConstraint("provider", "provider_call_id"),
        Index("ix_call_started_id", "started_at", "id"),
        Index("ix_call_pool_started", "pool_id", "started_at"),
        Index("ix_call_from_started", "from_number", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_call_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16))
    from_number: Mapped[str] = mapped_column(String(64))
    to_number: Mapped[str] = mapped_column(String(64))
    caller_name: Mapped[str | None] = mapped_column(String(100))
    number_id: Mapped[int | None] = mapped_column(ForeignKey("tracking_number.id"))
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("pool.id"))
    session_id: Mapped[str | None] = mapped_column(ForeignKey("visitor_session.id"), index=True)
    lease_id: Mapped[int | None] = mapped_column(ForeignKey("lease.id"))
    attribution: Mapped[str] = mapped_column(String(16))
    first_time: Mapped[bool | None] = mapped_column(Boolean)
    source: Mapped[str | None] = mapped_column(String(255))
    medium: Mapped[str | None] = mapped_column(String(255))
    campaign: Mapped[str | None] = mapped_column(String(255))
    forwarded_to: Mapped[str | None] = mapped_column(String(PHONE))
    status: Mapped[str] = mapped_column(String(16))
    dial_status: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    disposition: Mapped[str | None] = mapped_column(String(16))
    recording_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CallEvent(Base):
    """A webhook event applied to a call; the unique key makes every delivery idempotent."""

    __tablename__ = "call_event"
    __table_args__ = (UniqueConstraint("provider_call_id", "event_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_call_id: Mapped[str] = mapped_column(String(64))
    event_key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


# A request in one of these states is still to be worked on; the rest are final.
CALLBACK_ACTIVE = (
    "queued",
    "scheduled",
    "calling_agent",
    "calling_customer",
    "agent_unavailable",
    "customer_unreachable",
)
CALLBACK_ACTIVE_SQL = text("status IN (" + ", ".join(f"'{s}'" for s in CALLBACK_ACTIVE) + ")")


class CallbackRequest(Base):
    """A visitor's request to be called back; the table is the workers' queue."""

    __tablename__ = "callback_request"
    __table_args__ = (
        # The queue: active requests in the order they fall due.
        Index(
            "ix_callback_request_due",
            "next_attempt_at",
            postgresql_where=CALLBACK_ACTIVE_SQL,
            sqlite_where=CALLBACK_ACTIVE_SQL,
        ),
        # At most one pending request per number, however many forms name it.
        Index(
            "uq_callback_request_pending_phone",
            "phone",
            unique=True,
            postgresql_where=CALLBACK_ACTIVE_SQL,
            sqlite_where=CALLBACK_ACTIVE_SQL,
        ),
        Index("ix_callback_request_phone_created", "phone", "created_at"),
        Index("ix_callback_request_created_id", "created_at", "id"),
        Index("ix_callback_request_pool_created", "pool_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id"))
    session_id: Mapped[str | None] = mapped_column(ForeignKey("visitor_session.id"))
    phone: Mapped[str] = mapped_column(String(PHONE))
    status: Mapped[str] = mapped_column(String(24))
    # Rounds started: a round rings the agents in order until one answers.
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    agent_index: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # When a worker next acts on it: the next call, a scheduled opening, or a check on a
    # call in progress. A claim pushes it out by the claim timeout, so a dead worker's
    # claim lapses by itself.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    current_attempt_id: Mapped[int | None] = mapped_column(BigId)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("call.id"))
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# An attempt in one of these states may have a call running on the platform.
CALLBACK_LIVE_ATTEMPT = ("originating", "ringing_agent", "agent_answered")
CALLBACK_LIVE_ATTEMPT_SQL = text(
    "status IN (" + ", ".join(f"'{s}'" for s in CALLBACK_LIVE_ATTEMPT) + ")"
)


class CallbackAttempt(Base):
    """One call to an agent for a callback request, recorded before the platform is asked."""

    __tablename__ = "callback_attempt"
    __table_args__ = (
        Index("ix_callback_attempt_request", "request_id", "id"),
        # Which agents are on a callback call right now: they are not rung for another.
        Index(
            "ix_callback_attempt_live_agent",
            "agent",
            postgresql_where=CALLBACK_LIVE_ATTEMPT_SQL,
            sqlite_where=CALLBACK_LIVE_ATTEMPT_SQL,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("callback_request.id"))
    round: Mapped[int] = mapped_column(Integer)
    agent: Mapped[str] = mapped_column(String(PHONE))
    status: Mapped[str] = mapped_column(String(24))
    provider: Mapped[str] = mapped_column(String(32))
    provider_call_id: Mapped[str | None] = mapped_column(String(64), index=True)
    customer_status: Mapped[str | None] = mapped_column(String(16))
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    agent_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MediaSpend(Base):
    """What a source, medium and campaign cost on one day (imported from the ad platforms).

    Cost is kept in micros (millionths of the currency unit), exact on every database. An
    absent medium or campaign is '' so that the natural key stays unique.
    """

    __tablename__ = "media_spend"
    __table_args__ = (UniqueConstraint("day", "source", "medium", "campaign"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(255))
    medium: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    campaign: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    cost_micros: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    clicks: Mapped[int | None] = mapped_column(Integer)
    impressions: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookSubscription(Base):
    """A CRM's endpoint and the events it wants; its secret signs every delivery."""

    __tablename__ = "webhook_subscription"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    # Event types, comma-separated in a fixed order (schemas/webhooks.py EVENT_TYPES).
    events: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Deleted subscriptions stay, for the delivery log that refers to them.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutboxEvent(Base):
    """Something that happened, recorded in the transaction that made it happen.

    The dispatcher later renders its payload once and fans it out to deliveries; the
    unique (type, subject) makes recording it again a no-op.
    """

    __tablename__ = "outbox_event"
    __table_args__ = (
        UniqueConstraint("type", "subject"),
        Index("ix_outbox_event_pending", "fanned_out_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[str | None] = mapped_column(Text)
    fanned_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One event on its way to one target (a subscription, or GA4), until it arrives."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "target"),
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_subscription", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_event.id"))
    # "webhook:<subscription id>" or "ga4".
    target: Mapped[str] = mapped_column(String(32))
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_subscription.id"))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookAttempt(Base):
    """One try at a delivery: the delivery log the ops API shows."""

    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_delivery.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(255))


class WebCredential(Base):
    """A short-lived platform subscriber made for one visit's browser call (Web-To-Call).

    The subscriber's identity ties its calls to the visit exactly; its password is handed
    to the page once and never stored here.
    """

    __tablename__ = "web_credential"
    __table_args__ = (
        Index("ix_web_credential_session_created", "session_id", "created_at"),
        Index("ix_web_credential_live", "deleted_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("visitor_session.id"))
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The platform call made with it, once the call reaches our webhook.
    call_id: Mapped[str | None] = mapped_column(String(64))
    # When the subscriber was deleted on the platform.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
