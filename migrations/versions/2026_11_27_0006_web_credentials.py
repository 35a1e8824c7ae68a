"""Web-To-Call: the short-lived subscribers made for visitors' browser calls

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 07:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "web_credential",
        sa.Column("id", BigId, nullable=False),
        sa.Column("msisdn", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pool_id"], ["pool.id"], name=op.f("fk_web_credential_pool_id_pool")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["visitor_session.id"],
            name=op.f("fk_web_credential_session_id_visitor_session"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_credential")),
        sa.UniqueConstraint("msisdn", name=op.f("uq_web_credential_msisdn")),
    )
    op.create_index(
        "ix_web_credential_session_created", "web_credential", ["session_id", "created_at"]
    )
    op.create_index("ix_web_credential_live", "web_credential", ["deleted_at", "expires_at"])


def downgrade() -> None:
    op.drop_table("web_credential")
