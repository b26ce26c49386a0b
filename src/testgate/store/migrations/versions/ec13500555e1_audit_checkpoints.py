"""audit checkpoints

Revision ID: ec13500555e1
Revises: 04c1e0a92776
Create Date: 2026-11-21 23:48:36.317457
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import testgate.store.base

revision: str = "ec13500555e1"
down_revision: str | None = "04c1e0a92776"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.String(length=26), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("time", testgate.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("purged", sa.BigInteger(), nullable=False),
        sa.Column("cutoff", testgate.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", testgate.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index("ix_audit_checkpoints_org_seq", ["organization_id", "seq"], unique=True)

    # The model always declared (organization, seq) unique; the initial migration created it plain.
    # Uniqueness is what makes two concurrent appends unable to share a place in the chain.
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_org_seq")
        batch_op.create_index("ix_audit_events_org_seq", ["organization_id", "seq"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_org_seq")
        batch_op.create_index("ix_audit_events_org_seq", ["organization_id", "seq"], unique=False)

    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_checkpoints_org_seq")

    op.drop_table("audit_checkpoints")
