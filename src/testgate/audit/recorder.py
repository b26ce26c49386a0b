"""The recorder: one event per dispatch and per authentication event, chained per organization.

Each event's hash covers a canonical JSON encoding of its fields plus the previous event's hash, so a
removed, edited or reordered event breaks the chain (``testgate audit verify``). After a retention purge
the chain continues from the checkpoint the purge left (the seq and hash of the last deleted event).
"""

from __future__ import annotations

import functools
import hashlib
import operator
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Literal

from sqlalchemy import Select, bindparam, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from testgate import jsontext
from testgate.audit import postgresql
from testgate.audit.formats import StoredEvent
from testgate.audit.redaction import scrub, scrub_text
from testgate.audit.sink import FileSink
from testgate.ids import new_id
from testgate.store.audit import AuditCheckpointRow, AuditEventRow
from testgate.store.base import utcnow
from testgate.store.db import Database

Outcome = Literal["allowed", "denied", "error"]
GENESIS = "0" * 64
MAX_ARGUMENT_CHARS = 4000
SECRET_KEYS = ("password", "secret", "token", "authorization", "cookie", "api_key", "apikey")


@dataclass
class Event:
    organization_id: str
    action: str
    outcome: Outcome
    transport: str
    actor_type: str
    actor_id: str | None = None
    actor_name: str = ""
    environment_id: str | None = None
    resources: list[dict[str, str]] = field(default_factory=list)
    reason: str = ""
    confirmation: str | None = None
    request_id: str | None = None
    source_address: str | None = None
    user_agent: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


# json.dumps's output for these options, each encoder built once (``jsontext``).
_SORTED = jsontext.encoder(sort_keys=True, default=str)
_CANONICAL = jsontext.encoder(sort_keys=True, separators=(",", ":"), default=str)
_SECRET_KEY = re.compile("|".join(map(re.escape, SECRET_KEYS)))


def redact(value: Any) -> Any:
    """Replace the values of secret-looking fields with ``***`` (a null stays null: that no secret was given
    is no secret, and the record should say so)."""
    if isinstance(value, dict):
        return {k: "***" if _secret_key(k) and v is not None else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _secret_key(key: str) -> bool:
    """A key naming a secret: one of ``SECRET_KEYS`` anywhere in it, in any case."""
    return _SECRET_KEY.search(key.lower()) is not None


def cleaned(value: Any) -> Any:
    """``scrub(redact(value), keys=False)`` in one pass: secret-named fields masked, every string scrubbed.

    JSON-shaped values (what tool arguments are) take the short way; anything else the general one.
    """
    kind = type(value)
    if kind is str:
        return scrub_text(value)
    if kind is dict:
        return {k: "***" if _secret_key(k) and v is not None else cleaned(v) for k, v in value.items()}
    if kind is list:
        return [cleaned(v) for v in value]
    if value is None or kind is int or kind is bool or kind is float:
        return value
    return scrub(redact(value), keys=False)


def bound_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    text = _SORTED(arguments)
    if len(text) <= MAX_ARGUMENT_CHARS:
        return arguments
    return {"_truncated": True, "_preview": text[:MAX_ARGUMENT_CHARS]}


# The columns an event's hash covers, in the order of the table: all but its id and the hash itself.
CHAINED_COLUMNS = tuple(column.name for column in AuditEventRow.__table__.columns if column.name not in ("id", "hash"))


def canonical(row: StoredEvent) -> bytes:
    """The bytes an event's hash covers (everything but the hash itself)."""
    return _CANONICAL(_body(row)).encode()


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def encode(values: Mapping[str, Any]) -> bytes:
    """The canonical encoding of an event given as column values (a dict)."""
    return canonical(SimpleNamespace(**values))


def _body(row: StoredEvent) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "event_id": row.event_id,
        "time": _iso(row.time),
        "organization_id": row.organization_id,
        "environment_id": row.environment_id,
        "actor": [row.actor_type, row.actor_id, row.actor_name],
        "transport": row.transport,
        "action": row.action,
        "resources": row.resources,
        "outcome": row.outcome,
        "reason": row.reason,
        "confirmation": row.confirmation,
        "request_id": row.request_id,
        "source_address": row.source_address,
        "user_agent": row.user_agent,
        "arguments": row.arguments,
        "prev_hash": row.prev_hash,
    }


# The canonical encoding's keys are sorted: "prev_hash" comes before "seq", with keys on every side.
_KEYS = sorted(_body(SimpleNamespace(**{**dict.fromkeys(CHAINED_COLUMNS), "time": datetime.min})))
_BEFORE_PREV = _KEYS[: _KEYS.index("prev_hash")]
_BETWEEN = _KEYS[_KEYS.index("prev_hash") + 1 : _KEYS.index("seq")]
_AFTER_SEQ = _KEYS[_KEYS.index("seq") + 1 :]


def encode_around(row: StoredEvent) -> tuple[str, str, str]:
    """The canonical encoding of an event in three pieces around the values its place in the chain decides.

    ``canonical(row) == (a + prev_hash + b + str(seq) + c).encode()`` for any ``seq`` and ``prev_hash``
    (a hex digest): for the database to hash an event whose seq and prev_hash only it knows.
    """
    body = _body(row)
    a = _CANONICAL({key: body[key] for key in _BEFORE_PREV})[:-1] + ',"prev_hash":"'
    b = '",' + _CANONICAL({key: body[key] for key in _BETWEEN})[1:-1] + ',"seq":'
    c = "," + _CANONICAL({key: body[key] for key in _AFTER_SEQ})[1:]
    return a, b, c


def digest(row: StoredEvent) -> str:
    """The chain hash of an event (a stored row, a ``ChainedEvent``)."""
    return hashlib.sha256(canonical(row)).hexdigest()


def _head_query(model: type[AuditEventRow] | type[AuditCheckpointRow]) -> Select[int, str]:
    return (
        select(model.seq, model.hash)
        .where(model.organization_id == bindparam("organization_id"))
        .order_by(model.seq.desc())
        .limit(1)
    )


_HEAD_QUERIES = (_head_query(AuditEventRow), _head_query(AuditCheckpointRow))


async def head(session: AsyncSession | AsyncConnection, organization_id: str) -> tuple[int, str]:
    """The seq and hash the next event links to: the last event's, else the last checkpoint's, else genesis."""
    for query in _HEAD_QUERIES:
        last = (await session.execute(query, {"organization_id": organization_id})).first()
        if last is not None:
            return last[0], last[1]
    return 0, GENESIS


async def record(session: AsyncSession, event: Event, *, sink: FileSink | None = None) -> ChainedEvent:
    """Append ``event`` to its organization's chain inside ``session``'s transaction.

    Secrets MUST NOT reach the chain: secret-named arguments are masked, and token-shaped or registered
    secret values are scrubbed from arguments and reason. ``sink`` gets the event once it commits.
    """
    return (await record_many(session, [event], sink=sink))[0]


async def record_many(
    session: AsyncSession | AsyncConnection, events: Sequence[Event], *, sink: FileSink | None = None
) -> list[ChainedEvent]:
    """Append ``events``, in order, to their organizations' chains inside ``session``'s transaction.

    On SQLite the rows go in with one INSERT statement after reading the heads (SQLite's write transaction
    already excludes every other writer); on PostgreSQL a stored function locks, chains and inserts in
    one statement (``audit.postgresql``). The returned rows are not attached to ``session``; ``sink``
    (with an ORM session) gets them once the transaction commits.
    """
    dialect = session.dialect if isinstance(session, AsyncConnection) else session.get_bind().dialect
    if dialect.name == "postgresql":
        rows = [_row(event) for event in events]
        await postgresql.append(session, dialect, rows, _pieces(rows))
    else:
        rows = _chained(events, {org: await head(session, org) for org in _organizations(events)})
        await session.execute(insert(AuditEventRow), [{name: getattr(r, name) for name in _COLUMNS} for r in rows])
    if sink is not None:
        assert isinstance(session, AsyncSession), "a sink follows an ORM session's commit"
        for row in rows:
            sink.attach(session, row)
    return rows


_COLUMNS = (*CHAINED_COLUMNS, "hash")


async def append_standing(db: Database, events: Sequence[Event]) -> list[ChainedEvent]:
    """``record_many`` as a transaction of its own, in one round trip on PostgreSQL's standing connection."""
    assert db.standing is not None, "a standing connection is PostgreSQL's"
    rows = [_row(event) for event in events]
    await postgresql.append_standing(db.standing, db.engine.dialect, rows, _pieces(rows))
    return rows


def _pieces(rows: Sequence[ChainedEvent]) -> list[tuple[str, str, str]]:
    return [encode_around(row) for row in rows]


def append_direct(connection: sqlite3.Connection, events: Sequence[Event], dialect: Dialect) -> list[ChainedEvent]:
    """``record_many`` on a plain ``sqlite3`` connection inside its write transaction (``Database.write_direct``).

    The same chain and the same stored values: the INSERT is SQLAlchemy's own, compiled once for
    ``dialect``, and each value goes through the column type's bind processing, as a session would.
    SQLite's write transaction excludes every other writer, so the head read here stays the head.
    """
    sql, values_of, processors = _direct_insert(dialect)
    rows = _chained(events, {org: _direct_head(connection, org, dialect) for org in _organizations(events)})
    parameters = []
    for row in rows:
        values = list(values_of(row))
        for index, process in processors:
            values[index] = process(values[index])
        parameters.append(values)
    connection.executemany(sql, parameters)
    return rows


def _organizations(events: Sequence[Event]) -> list[str]:
    """The organizations of ``events``, in the order they first appear."""
    return list(dict.fromkeys(event.organization_id for event in events))


def _chained(events: Sequence[Event], heads: dict[str, tuple[int, str]]) -> list[ChainedEvent]:
    """``events`` as rows, each linked to the one before it in its organization, from ``heads`` on."""
    heads = dict(heads)
    rows: list[ChainedEvent] = []
    for event in events:
        row = _row(event)
        last_seq, row.prev_hash = heads[event.organization_id]
        row.seq = last_seq + 1
        row.hash = digest(row)
        heads[event.organization_id] = (row.seq, row.hash)
        rows.append(row)
    return rows


def _direct_head(connection: sqlite3.Connection, organization_id: str, dialect: Dialect) -> tuple[int, str]:
    """``head`` on a plain ``sqlite3`` connection: the same queries, compiled for ``dialect``."""
    for sql, names, fixed in _direct_head_queries(dialect):
        values = {**fixed, "organization_id": organization_id}
        last = connection.execute(sql, [values[name] for name in names]).fetchone()
        if last is not None:
            return int(last[0]), str(last[1])
    return 0, GENESIS


@functools.cache
def _direct_head_queries(dialect: Dialect) -> list[tuple[str, list[str], Mapping[str, Any]]]:
    """Each head query for ``dialect``: positional SQL, its parameter names, and the values it fixes (the limit)."""
    compiled = [query.compile(dialect=dialect) for query in _HEAD_QUERIES]
    return [(c.string, list(c.positiontup or []), c.construct_params({"organization_id": None})) for c in compiled]


@functools.cache
def _direct_insert(
    dialect: Dialect,
) -> tuple[str, Callable[[ChainedEvent], tuple[Any, ...]], list[tuple[int, Callable[[Any], Any]]]]:
    """The INSERT of an event row for ``dialect`` (positional): its SQL, what reads a row's parameters in
    order, and the bind processor of each parameter that has one (by position)."""
    compiled = insert(AuditEventRow).compile(dialect=dialect, column_keys=list(_COLUMNS))
    columns = AuditEventRow.__table__.columns
    names = compiled.positiontup or []
    processors = [(i, columns[name].type.dialect_impl(dialect).bind_processor(dialect)) for i, name in enumerate(names)]
    return compiled.string, operator.attrgetter(*names), [(i, p) for i, p in processors if p is not None]


@dataclass(slots=True)
class ChainedEvent:
    """An event as it is stored: its column values, linked into its organization's chain.

    A plain value object (a ``StoredEvent``), not an ORM row: appends insert with Core statements, and
    building an instrumented ``AuditEventRow`` cost more than hashing the event.
    """

    seq: int
    event_id: str
    time: datetime
    organization_id: str
    environment_id: str | None
    actor_type: str
    actor_id: str | None
    actor_name: str
    transport: str
    action: str
    resources: list[Any]
    outcome: str
    reason: str
    confirmation: str | None
    request_id: str | None
    source_address: str | None
    user_agent: str | None
    arguments: dict[str, Any]
    prev_hash: str
    hash: str = ""


def _text(value: str) -> str:
    """Free text as a text column can hold it: a name or message may quote what a caller sent, U+0000
    included, which PostgreSQL refuses to store (it becomes U+FFFD)."""
    return value.replace("\x00", "\ufffd")


def _row(event: Event) -> ChainedEvent:
    """``event`` as it will be stored, not yet placed in its chain (no seq, previous hash or hash)."""
    return ChainedEvent(
        seq=0,
        event_id=new_id(),
        time=utcnow(),
        organization_id=event.organization_id,
        environment_id=event.environment_id,
        actor_type=event.actor_type,
        actor_id=event.actor_id,
        actor_name=_text(event.actor_name),
        transport=event.transport,
        action=event.action,
        resources=event.resources,
        outcome=event.outcome,
        reason=_text(scrub_text(event.reason)[:2000]) if event.reason else "",
        confirmation=event.confirmation,
        request_id=event.request_id,
        source_address=event.source_address,
        user_agent=(event.user_agent or None) and scrub_text(event.user_agent)[:400],
        arguments=bound_arguments(cleaned(event.arguments)),
        prev_hash="",
    )
