"""pools, tracking numbers, visitor sessions, leases, fallbacks, site keys

Revision ID: 0001
Revises:
Create Date: 2026-11-26 12:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    if is_pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    op.create_table(
        "pool",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("destination", sa.String(16), nullable=False),
        sa.Column("fallback_number", sa.String(16), nullable=False),
        sa.Column("lease_ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("cooldown_seconds", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool")),
        sa.UniqueConstraint("name", name=op.f("uq_pool_name")),
    )

    op.create_table(
        "site_key",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_site_key_key_hash")),
    )

    op.create_table(
        "tracking_number",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("e164", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("leased_session_id", sa.String(64), nullable=True),
        _ts("leased_until", nullable=True),
        _ts("available_at"),
        _ts("created_at"),
        _ts("retired_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["pool_id"], ["pool.id"], name=op.f("fk_tracking_number_pool_id_pool")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_number")),
        sa.UniqueConstraint("e164", name=op.f("uq_tracking_number_e164")),
    )
    if is_pg:
        # Every lease rewrites available_at, an indexed column: no HOT updates, so dead
        # tuples and dead index entries pile up fast. Leave room on each page, vacuum eagerly.
        op.execute(
            "ALTER TABLE tracking_number SET (fillfactor = 70,"
            " autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 2000,"
            " autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.02)"
        )
    op.create_index(
        "ix_tracking_number_claim",
        "tracking_number",
        ["pool_id", "available_at"],
        unique=False,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )

    op.create_table(
        "visitor_session",
        sa.Column("id", sa.String(64), primary_key=True),
        _ts("created_at"),
        _ts("last_seen_at"),
        sa.Column("site_key_id", sa.Integer(), nullable=True),
        sa.Column("landing_url", sa.Text(), nullable=True),
        sa.Column("referrer", sa.Text(), nullable=True),
        *[
            sa.Column(name, sa.String(255), nullable=True)
            for name in (
                "utm_source",
                "utm_medium",
                "utm_campaign",
                "utm_term",
                "utm_content",
                "gclid",
                "gbraid",
                "wbraid",
                "msclkid",
                "fbclid",
            )
        ],
        sa.Column("ga_client_id", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.Column("ip_hash", sa.String(64), nullable=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("phone", sa.String(16), nullable=True),
        sa.Column("fullname", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_key_id"], ["site_key.id"], name=op.f("fk_visitor_session_site_key_id_site_key")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visitor_session")),
    )
    op.create_index(
        op.f("ix_visitor_session_created_at"), "visitor_session", ["created_at"], unique=False
    )
    op.create_index(op.f("ix_visitor_session_phone"), "visitor_session", ["phone"], unique=False)

    op.create_table(
        "lease",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("number_id", sa.Integer(), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        _ts("started_at"),
        _ts("ends_at"),
        sa.ForeignKeyConstraint(
            ["number_id"], ["tracking_number.id"], name=op.f("fk_lease_number_id_tracking_number")
        ),
        sa.ForeignKeyConstraint(["pool_id"], ["pool.id"], name=op.f("fk_lease_pool_id_pool")),
        sa.ForeignKeyConstraint(
            ["session_id"], ["visitor_session.id"], name=op.f("fk_lease_session_id_visitor_session")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lease")),
    )
    op.create_index("ix_lease_number_started", "lease", ["number_id", "started_at"], unique=False)
    op.create_index("ix_lease_pool_started", "lease", ["pool_id", "started_at"], unique=False)
    op.create_index(op.f("ix_lease_session_id"), "lease", ["session_id"], unique=False)
    if is_pg:
        # The schema itself refuses two overlapping leases of one number.
        op.execute(
            "ALTER TABLE lease ADD CONSTRAINT ex_lease_number_no_overlap"
            " EXCLUDE USING gist (number_id WITH =, tstzrange(started_at, ends_at) WITH &&)"
        )

    op.create_table(
        "fallback_event",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        _ts("occurred_at"),
        sa.ForeignKeyConstraint(
            ["pool_id"], ["pool.id"], name=op.f("fk_fallback_event_pool_id_pool")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fallback_event")),
    )
    op.create_index(
        "ix_fallback_event_pool_at", "fallback_event", ["pool_id", "occurred_at"], unique=False
    )


def downgrade() -> None:
    op.drop_table("fallback_event")
    op.drop_table("lease")
    op.drop_table("visitor_session")
    op.drop_table("tracking_number")
    op.drop_table("site_key")
    op.drop_table("pool")
