"""media spend; each session's channel and landing page kept for reports

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 04:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime
from app.services.marketing import CHANNEL_INPUTS, derived

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


def _backfill() -> None:
    # Sessions stored before this revision get their channel by the same rule as new ones.
    conn = op.get_bind()
    session = sa.table(
        "visitor_session",
        sa.column("id", sa.String()),
        *(sa.column(name, sa.String()) for name in CHANNEL_INPUTS),
        *(sa.column(name, sa.String()) for name in ("source", "medium", "campaign")),
        sa.column("landing_page", sa.String()),
    )
    after = ""
    while True:
        rows = conn.execute(
            sa.select(session.c.id, *(session.c[name] for name in CHANNEL_INPUTS))
            .where(session.c.id > after)
            .order_by(session.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            values = derived({name: getattr(row, name) for name in CHANNEL_INPUTS})
            conn.execute(sa.update(session).where(session.c.id == row.id).values(**values))
        after = rows[-1].id


def upgrade() -> None:
    with op.batch_alter_table("visitor_session") as batch:
        batch.add_column(sa.Column("source", sa.String(255), nullable=True))
        batch.add_column(sa.Column("medium", sa.String(255), nullable=True))
        batch.add_column(sa.Column("campaign", sa.String(255), nullable=True))
        batch.add_column(sa.Column("landing_page", sa.String(2048), nullable=True))
    _backfill()
    # Reports select leases by start and callbacks by pool and creation, across all pools.
    op.create_index("ix_lease_started", "lease", ["started_at"])
    op.create_index(
        "ix_callback_request_pool_created", "callback_request", ["pool_id", "created_at"]
    )

    op.create_table(
        "media_spend",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("medium", sa.String(255), server_default=sa.text("''"), nullable=False),
        sa.Column("campaign", sa.String(255), server_default=sa.text("''"), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=True),
        sa.Column("impressions", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_spend")),
        sa.UniqueConstraint("day", "source", "medium", "campaign", name=op.f("uq_media_spend_day")),
    )


def downgrade() -> None:
    op.drop_table("media_spend")
    op.drop_index("ix_callback_request_pool_created", table_name="callback_request")
    op.drop_index("ix_lease_started", table_name="lease")
    with op.batch_alter_table("visitor_session") as batch:
        batch.drop_column("landing_page")
        batch.drop_column("campaign")
        batch.drop_column("medium")
        batch.drop_column("source")
