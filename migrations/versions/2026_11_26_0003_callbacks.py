"""callback requests and attempts; pool agents, business hours and callback countries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 23:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE = sa.text(
    "status IN ('queued', 'scheduled', 'calling_agent', 'calling_customer', "
    "'agent_unavailable', 'customer_unreachable')"
)

LIVE = sa.text("status IN ('originating', 'ringing_agent', 'agent_answered')")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("pool") as batch:
        batch.add_column(sa.Column("agents", sa.JSON(), server_default="[]", nullable=False))
        batch.add_column(sa.Column("business_hours", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("callback_countries", sa.JSON(), nullable=True))

    op.create_table(
        "callback_request",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("agent_index", sa.Integer(), server_default="0", nullable=False),
        _ts("next_attempt_at"),
        _ts("scheduled_for"),
        _ts("expires_at"),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claim_token", sa.String(32), nullable=True),
        _ts("claimed_until", nullable=True),
        sa.Column("current_attempt_id", BigId, nullable=True),
        sa.Column("call_id", BigId, nullable=True),
        sa.Column("last_error", sa.String(255), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("ended_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_request")),
        sa.ForeignKeyConstraint(
            ["pool_id"], ["pool.id"], name=op.f("fk_callback_request_pool_id_pool")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["visitor_session.id"],
            name=op.f("fk_callback_request_session_id_visitor_session"),
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["call.id"], name=op.f("fk_callback_request_call_id_call")
        ),
    )
    op.create_index(
        "ix_callback_request_due",
        "callback_request",
        ["next_attempt_at"],
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_index(
        "uq_callback_request_pending_phone",
        "callback_request",
        ["phone"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_index(
        "ix_callback_request_phone_created", "callback_request", ["phone", "created_at"]
    )
    op.create_index("ix_callback_request_created_id", "callback_request", ["created_at", "id"])

    op.create_table(
        "callback_attempt",
        sa.Column("id", BigId, nullable=False),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_call_id", sa.String(64), nullable=True),
        sa.Column("customer_status", sa.String(16), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(255), nullable=True),
        _ts("created_at"),
        _ts("agent_answered_at", nullable=True),
        _ts("ended_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempt")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["callback_request.id"],
            name=op.f("fk_callback_attempt_request_id_callback_request"),
        ),
    )
    op.create_index("ix_callback_attempt_request", "callback_attempt", ["request_id", "id"])
    op.create_index(
        "ix_callback_attempt_live_agent",
        "callback_attempt",
        ["agent"],
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    op.create_index(
        op.f("ix_callback_attempt_provider_call_id"), "callback_attempt", ["provider_call_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_callback_attempt_provider_call_id"), table_name="callback_attempt")
    op.drop_index("ix_callback_attempt_live_agent", table_name="callback_attempt")
    op.drop_index("ix_callback_attempt_request", table_name="callback_attempt")
    op.drop_table("callback_attempt")
    for name in (
        "ix_callback_request_created_id",
        "ix_callback_request_phone_created",
        "uq_callback_request_pending_phone",
        "ix_callback_request_due",
    ):
        op.drop_index(name, table_name="callback_request")
    op.drop_table("callback_request")
    with op.batch_alter_table("pool") as batch:
        for name in ("callback_countries", "business_hours", "agents"):
            batch.drop_column(name)
