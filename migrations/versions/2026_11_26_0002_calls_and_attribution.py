"""calls, call events, pool match window, whisper, recording and static source

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 16:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("pool") as batch:
        batch.add_column(
            sa.Column("match_window_seconds", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("whisper", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(
            sa.Column("record_calls", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("source", sa.String(255), nullable=True))
        batch.add_column(sa.Column("medium", sa.String(255), nullable=True))
        batch.add_column(sa.Column("campaign", sa.String(255), nullable=True))
    # Existing pools get a window of up to 15 minutes, never longer than their cooldown.
    op.execute(
        "UPDATE pool SET match_window_seconds = "
        "CASE WHEN cooldown_seconds < 900 THEN cooldown_seconds ELSE 900 END"
    )

    op.create_table(
        "call",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_call_id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("from_number", sa.String(64), nullable=False),
        sa.Column("to_number", sa.String(64), nullable=False),
        sa.Column("caller_name", sa.String(100), nullable=True),
        sa.Column("number_id", sa.Integer(), nullable=True),
        sa.Column("pool_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("lease_id", BigId, nullable=True),
        sa.Column("attribution", sa.String(16), nullable=False),
        sa.Column("first_time", sa.Boolean(), nullable=True),
        sa.Column("source", sa.String(255), nullable=True),
        sa.Column("medium", sa.String(255), nullable=True),
        sa.Column("campaign", sa.String(255), nullable=True),
        sa.Column("forwarded_to", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dial_status", sa.String(16), nullable=True),
        _ts("started_at"),
        _ts("answered_at", nullable=True),
        _ts("ended_at", nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=True),
        sa.Column("disposition", sa.String(16), nullable=True),
        sa.Column("recording_url", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call")),
        sa.ForeignKeyConstraint(
            ["number_id"], ["tracking_number.id"], name=op.f("fk_call_number_id_tracking_number")
        ),
        sa.ForeignKeyConstraint(["pool_id"], ["pool.id"], name=op.f("fk_call_pool_id_pool")),
        sa.ForeignKeyConstraint(
            ["session_id"], ["visitor_session.id"], name=op.f("fk_call_session_id_visitor_session")
        ),
        sa.ForeignKeyConstraint(["lease_id"], ["lease.id"], name=op.f("fk_call_lease_id_lease")),
        sa.UniqueConstraint("provider", "provider_call_id", name=op.f("uq_call_provider")),
    )
    op.create_index("ix_call_started_id", "call", ["started_at", "id"])
    op.create_index("ix_call_pool_started", "call", ["pool_id", "started_at"])
    op.create_index("ix_call_from_started", "call", ["from_number", "started_at"])
    op.create_index(op.f("ix_call_session_id"), "call", ["session_id"])

    op.create_table(
        "call_event",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("provider_call_id", sa.String(64), nullable=False),
        sa.Column("event_key", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_event")),
        sa.UniqueConstraint(
            "provider_call_id", "event_key", name=op.f("uq_call_event_provider_call_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("call_event")
    op.drop_index(op.f("ix_call_session_id"), table_name="call")
    op.drop_index("ix_call_from_started", table_name="call")
    op.drop_index("ix_call_pool_started", table_name="call")
    op.drop_index("ix_call_started_id", table_name="call")
    op.drop_table("call")
    with op.batch_alter_table("pool") as batch:
        for name in ("campaign", "medium", "source", "record_calls", "whisper"):
            batch.drop_column(name)
        batch.drop_column("match_window_seconds")
