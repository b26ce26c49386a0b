"""a recreated workflow numbers its executions on from those of the deleted one

Revision ID: f3b8d2a61c57
Revises: e5a9c3d17b42
Create Date: 2026-12-07 22:00:00.000000

Deleting a workflow keeps its executions; a workflow created again under the same name started counting
from 0, so its first run was ``name#1`` again and that reference named two executions. New workflows now
count on from the executions under their name; this brings the counters of existing ones up to date.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f3b8d2a61c57"
down_revision: str | None = "e5a9c3d17b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPDATE = """
UPDATE workflows SET execution_count = (
    SELECT max(e.number) FROM executions e
    WHERE e.environment_id = workflows.environment_id AND e.workflow_name = workflows.name
)
WHERE execution_count < (
    SELECT coalesce(max(e.number), 0) FROM executions e
    WHERE e.environment_id = workflows.environment_id AND e.workflow_name = workflows.name
)
"""


def upgrade() -> None:
    op.execute(UPDATE)


def downgrade() -> None:
    """Nothing to undo: the counters stay as high as the numbers already given out."""
