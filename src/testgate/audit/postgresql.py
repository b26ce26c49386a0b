"""Audit appends on PostgreSQL: any number of events in one statement, chained by a stored function.

Appending from the client took four statements inside the transaction (lock the organization's row,
read the chain's head, maybe the checkpoint's, INSERT), each a round trip and a few hundred
microseconds of SQLAlchemy and asyncpg on the event loop: about 1.9 ms of CPU per event, four times
the rest of what testgate adds to a call. ``testgate_audit_append`` (migration ``b7d3a41c9e20``) does
the same on the server: it takes each organization's chain lock (``testgate_audit_lock``, a
transaction-level advisory lock, migration ``e5a9c3d17b42``), reads each chain's head in a snapshot taken
after the lock (a VOLATILE PL/pgSQL function takes one per statement; a single SQL statement could not,
its snapshot would predate the lock and fork the chain), hashes and inserts.

The hash covers the canonical encoding as everywhere else: the client hands each event's encoding over
in three pieces around the seq and previous hash (``recorder.encode_around``), and checks the hash the
function returns against the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, bindparam, func, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from testgate.store.audit import AuditEventRow
from testgate.store.standing import StandingConnection

if TYPE_CHECKING:
    from testgate.audit.recorder import ChainedEvent

# The function's arrays, in its parameter order: the table's columns but the id and those the function
# decides, then the pieces of each event's encoding.
DECIDED = ("id", "seq", "prev_hash", "hash")
COLUMNS = tuple(column.name for column in AuditEventRow.__table__.columns if column.name not in DECIDED)
PIECES = ("before_prev", "before_seq", "after_seq")
_APPENDED = func.testgate_audit_append(*(bindparam(name) for name in (*COLUMNS, *PIECES))).table_valued(
    "appended_seq", "appended_prev", "appended_hash"
)
APPEND = select(_APPENDED.c.appended_seq, _APPENDED.c.appended_prev, _APPENDED.c.appended_hash)


async def lock_chain(session: AsyncSession, organization_id: str) -> None:
    """Hold ``organization_id``'s chain until the transaction ends, as appends do: no event is appended meanwhile.

    Only on PostgreSQL; on SQLite a write transaction already excludes every other writer.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.testgate_audit_lock(array([organization_id], type_=Text))))


class ChainMismatch(RuntimeError):
    """The database hashed an event differently from this process (its function is not this version's)."""


async def append(
    connection: AsyncSession | AsyncConnection,
    dialect: Dialect,
    rows: Sequence[ChainedEvent],
    pieces: Sequence[tuple[str, str, str]],
) -> None:
    """Append ``rows`` in order inside ``connection``'s transaction; fill in each one's seq, prev_hash and hash.

    ``pieces`` are each row's canonical encoding around its seq and previous hash.
    """
    arrays = _arrays(dialect, rows, pieces)
    placed = (await connection.execute(APPEND, dict(zip((*COLUMNS, *PIECES), arrays, strict=True)))).all()
    _place(rows, pieces, placed)


async def append_standing(
    standing: StandingConnection, dialect: Dialect, rows: Sequence[ChainedEvent], pieces: Sequence[tuple[str, str, str]]
) -> None:
    """``append`` as a transaction of its own, in one round trip on ``standing`` (the group commit's path)."""
    placed = await standing.fetch(_sql(dialect), *_arrays(dialect, rows, pieces))
    _place(rows, pieces, placed)


def _arrays(dialect: Dialect, rows: Sequence[ChainedEvent], pieces: Sequence[tuple[str, str, str]]) -> list[list[Any]]:
    """The function's arguments: one array per column, then per piece."""
    arrays = []
    for name, process in _processors(dialect):
        values = [getattr(row, name) for row in rows]
        arrays.append([process(value) for value in values] if process else values)
    arrays.extend([piece[index] for piece in pieces] for index in range(len(PIECES)))
    return arrays


def _place(rows: Sequence[ChainedEvent], pieces: Sequence[tuple[str, str, str]], placed: Sequence[Any]) -> None:
    """Fill in what the database decided, checking each hash against the bytes this process encoded."""
    for row, (a, b, c), (seq, prev, digest) in zip(rows, pieces, placed, strict=True):
        row.seq, row.prev_hash, row.hash = seq, prev, digest
        if hashlib.sha256(f"{a}{prev}{b}{seq}{c}".encode()).hexdigest() != digest:
            raise ChainMismatch("the database's testgate_audit_append hashed an event differently; run the migrations")


@functools.cache
def _sql(dialect: Dialect) -> str:
    return str(APPEND.compile(dialect=dialect))


@functools.cache
def _processors(dialect: Dialect) -> list[tuple[str, Callable[[Any], Any] | None]]:
    """Each column's bind processing (JSON columns are sent as text, cast to json by the function)."""
    columns = AuditEventRow.__table__.columns
    return [(name, columns[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in COLUMNS]
