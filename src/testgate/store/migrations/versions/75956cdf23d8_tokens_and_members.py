"""tokens and members

Revision ID: 75956cdf23d8
Revises: 4050cdbac7ed
Create Date: 2026-11-22 00:03:12.129606
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import testgate.store.base

revision: str = "75956cdf23d8"
down_revision: str | None = "4050cdbac7ed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Token rotation with a grace period for the previous secret, and the creator's name for listings;
    # pending invitations (a hash of the one-time link's secret) on users.
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by_name", sa.String(length=200), server_default="", nullable=False))
        batch_op.add_column(sa.Column("previous_secret_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("previous_valid_until", testgate.store.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("rotated_at", testgate.store.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_tokens_created_by"), ["created_by"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_api_tokens_previous_secret_hash"), ["previous_secret_hash"])

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invite_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("invite_expires_at", testgate.store.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_unique_constraint(batch_op.f("uq_users_invite_hash"), ["invite_hash"])


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_invite_hash"), type_="unique")
        batch_op.drop_column("invite_expires_at")
        batch_op.drop_column("invite_hash")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_api_tokens_previous_secret_hash"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_api_tokens_created_by"))
        batch_op.drop_column("rotated_at")
        batch_op.drop_column("previous_valid_until")
        batch_op.drop_column("previous_secret_hash")
        batch_op.drop_column("created_by_name")
