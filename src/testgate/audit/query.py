"""Reading the audit log: filters, keyset pages (newest first) and keyset batches (oldest first).

Both walk the unique (organization, seq) index, so a page or a batch costs the same at any depth, and
a batch reader holds one batch in memory however long the log is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.platform.pagination import clamp_limit, decode_int_cursor, encode_cursor
from testgate.store.audit import AuditEventRow
from testgate.store.db import Database
from testgate.store.tenancy import Environment

CURSOR = "audit"  # the list a cursor belongs to (``pagination.encode_cursor``)

BATCH = 1000
EVENTS = AuditEventRow.__table__
Source = Database | AsyncSession
AnyRow = Row[*tuple[Any, ...]]
AnySelect = Select[*tuple[Any, ...]]


@dataclass(frozen=True)
class Filters:
    """Which events: a time range (since inclusive, until exclusive), environment, actor, action, outcome.

    ``actor`` matches an actor's id or name; an ``action`` ending in ``.`` or ``*`` is a prefix.
    """

    since: datetime | None = None
    until: datetime | None = None
    environment_id: str | None = None
    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    through_seq: int | None = None


def conditions(organization_id: str, filters: Filters) -> list[ColumnElement[bool]]:
    """SQL conditions selecting ``filters``' events of one organization."""
    found: list[ColumnElement[bool]] = [AuditEventRow.organization_id == organization_id]
    if filters.since is not None:
        found.append(AuditEventRow.time >= filters.since)
    if filters.until is not None:
        found.append(AuditEventRow.time < filters.until)
    if filters.environment_id is not None:
        found.append(AuditEventRow.environment_id == filters.environment_id)
    if filters.actor:
        found.append(or_(AuditEventRow.actor_id == filters.actor, AuditEventRow.actor_name == filters.actor))
    if filters.action:
        if filters.action.endswith((".", "*")):
            found.append(AuditEventRow.action.startswith(filters.action.rstrip("*"), autoescape=True))
        else:
            found.append(AuditEventRow.action == filters.action)
    if filters.outcome:
        found.append(AuditEventRow.outcome == filters.outcome)
    if filters.through_seq is not None:
        found.append(AuditEventRow.seq <= filters.through_seq)
    return found


def _events() -> AnySelect:
    # Plain rows, not ORM objects: nothing accumulates in a session's identity map while walking.
    return select(EVENTS)


async def page(
    session: AsyncSession, organization_id: str, filters: Filters, *, limit: int | None, cursor: str | None
) -> tuple[list[AnyRow], str | None]:
    """One page of matching events, newest first, and the cursor of the next page (None at the end)."""
    size = clamp_limit(limit)
    stmt = _events().where(*conditions(organization_id, filters))
    if cursor:
        stmt = stmt.where(AuditEventRow.seq < decode_int_cursor(cursor, CURSOR))
    rows = list((await session.execute(stmt.order_by(AuditEventRow.seq.desc()).limit(size + 1))).all())
    if len(rows) <= size:
        return rows, None
    return rows[:size], encode_cursor(CURSOR, rows[size - 1].seq)


async def fetch(source: Source, stmt: AnySelect) -> Sequence[AnyRow]:
    """The rows of ``stmt``, read in ``source``'s session or on a short connection of its own."""
    if isinstance(source, AsyncSession):
        return (await source.execute(stmt)).all()
    # A short connection per batch: a slow reader (a streamed export) never holds a transaction open.
    # Core execution, not a Session: plain rows, nothing kept in an identity map.
    async with source.engine.connect() as connection:
        return (await connection.execute(stmt)).all()


async def batches(
    source: Source, organization_id: str, filters: Filters = Filters(), *, after_seq: int = 0, size: int = BATCH
) -> AsyncIterator[Sequence[AnyRow]]:
    """Matching events oldest first, ``size`` at a time, from the event after ``after_seq``."""
    where = conditions(organization_id, filters)
    while True:
        stmt = _events().where(*where, AuditEventRow.seq > after_seq).order_by(AuditEventRow.seq).limit(size)
        rows = await fetch(source, stmt)
        if not rows:
            return
        yield rows
        if len(rows) < size:
            return
        after_seq = rows[-1].seq


async def environment_slugs(source: Source, organization_id: str) -> dict[str, str]:
    """Environment id -> slug for one organization (events name environments by id)."""
    stmt = select(Environment.id, Environment.slug).where(Environment.organization_id == organization_id)
    return {row.id: row.slug for row in await fetch(source, stmt)}
