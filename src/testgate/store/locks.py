"""Named locks held until the transaction ends.

On PostgreSQL a transaction-level advisory lock, keyed by a namespace and the hash of a name: two
transactions holding the same name take turns, whatever rows they touch. On SQLite nothing is needed: a
change's transaction holds the database's write lock from its start (``store.db``), which excludes every
other writer already.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

EXECUTION_NUMBERS = 1952933230  # numbering a workflow name's executions ('tgen'; the audit chain's is 'tgau')


async def hold(session: AsyncSession, namespace: int, name: str) -> None:
    """Wait for, then hold until the transaction ends, the lock on ``name`` in ``namespace``."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(namespace, func.hashtext(name))))
