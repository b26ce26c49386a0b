"""users.signed_out_at: signing out ends every browser session of the person

Revision ID: c4e8f19a2b07
Revises: b7d3a41c9e20
Create Date: 2026-12-07 00:30:00.000000

The browser session is a sealed cookie (user, issue time, expiry) with no server-side row, so deleting
the cookie at sign-out left a copy of it valid until it expired. A sign-out now records its time on the
user, and a session issued before it is refused (OWASP ASVS 4.0.3 V3.3.1).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import testgate.store.base

revision: str = "c4e8f19a2b07"
down_revision: str | None = "b7d3a41c9e20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signed_out_at", testgate.store.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("signed_out_at")
