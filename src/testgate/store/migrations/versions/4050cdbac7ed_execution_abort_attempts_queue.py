"""execution abort request, attempts and queue

Revision ID: 4050cdbac7ed
Revises: ec13500555e1
Create Date: 2026-11-22 00:00:59.915242
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import testgate.store.base

revision: str = "4050cdbac7ed"
down_revision: str | None = "ec13500555e1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # An abort requested from any process, runs counted for requeues, and the broker queue an execution
    # waits in (the Celery executor); existing executions ran locally, once.
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("abort_requested_at", testgate.store.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("queue", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("queue")
        batch_op.drop_column("attempts")
        batch_op.drop_column("abort_requested_at")
