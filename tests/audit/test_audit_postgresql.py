"""Audit appends on PostgreSQL go through one stored function (``audit.postgresql``): it must chain,
hash and store exactly what the Python chain would, and keep one unforked chain when several
processes append at once."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select, text
from tests.audit.conftest import Chain

from testgate.access.principal import local_owner
from testgate.audit import recorder
from testgate.audit.postgresql import ChainMismatch
from testgate.audit.verify import verify
from testgate.audit.writer import AuditWriter
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.platform import tenancy
from testgate.store.audit import AuditEventRow
from testgate.store.db import Database, create_engine

TRICKY_ARGUMENTS: list[dict[str, Any]] = [
    {},
    {"id": "01abc", "n": 3, "ok": True, "none": None},
    # Keys and values that look like the pieces' own boundaries.
    {"prev_hash": "0" * 64, "seq": 7, "nested": {"seq": None, "prev_hash": [1, 2]}},
    {"text": 'naïve ✓ "quoted" \\ back\nslash', "emoji": "🧪"},
    {"big": 1e20, "small": 1.5e-9, "negative": -0.0, "huge_int": 2**70},
]


def _event(chain: Chain, action: str, **fields: Any) -> recorder.Event:
    return recorder.Event(
        organization_id=chain.org_id,
        action=action,
        outcome="allowed",
        transport="mcp",
        actor_type="user",
        environment_id=chain.env_id,
        **fields,
    )


async def _rows(chain: Chain) -> list[AuditEventRow]:
    async with chain.platform.db.session(write=False) as session:
        return list(await session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)))


@pytest.mark.parametrize("arguments", TRICKY_ARGUMENTS)
@pytest.mark.parametrize(("seq", "prev"), [(1, recorder.GENESIS), (982_451_653, hashlib.sha256(b"x").hexdigest())])
def test_the_pieces_around_seq_and_prev_hash_join_into_the_canonical_encoding(
    arguments: dict[str, Any], seq: int, prev: str
) -> None:
    values = dict.fromkeys(recorder.CHAINED_COLUMNS) | {
        "event_id": "01jevent",
        "time": datetime(2026, 12, 6, 21, 0, 0, 123456, tzinfo=UTC),
        "organization_id": "01jorg",
        "actor_type": "user",
        "actor_name": "Ada · ops",
        "action": "get_execution",
        "transport": "mcp",
        "outcome": "allowed",
        "reason": "",
        "resources": [{"type": "execution", "id": "01x", "name": "smoke"}],
        "arguments": arguments,
    }
    a, b, c = recorder.encode_around(SimpleNamespace(**values))
    assert (a + prev + b + str(seq) + c).encode() == recorder.encode({**values, "seq": seq, "prev_hash": prev})


@pytest.mark.postgres
async def test_session_and_group_commit_appends_store_the_values_and_the_hash_python_computes(
    postgres_chain: Chain,
) -> None:
    db = postgres_chain.platform.db
    writer = AuditWriter(db)
    for index, arguments in enumerate(TRICKY_ARGUMENTS):
        event = _event(postgres_chain, f"by.session.{index}", arguments=arguments, request_id=f"r{index}")
        async with db.session() as session:
            stored = await recorder.record(session, event)
        assert stored.seq == 2 * index + 1
        await writer.record(_event(postgres_chain, f"by.writer.{index}", arguments=arguments, reason="why ✓"))

    rows = await _rows(postgres_chain)
    assert [row.seq for row in rows] == list(range(1, 2 * len(TRICKY_ARGUMENTS) + 1))
    assert [row.arguments for row in rows[::2]] == TRICKY_ARGUMENTS
    assert [row.arguments for row in rows[1::2]] == TRICKY_ARGUMENTS
    for before, row in zip([None, *rows], rows, strict=False):
        # The hash the function stored is the hash of the values read back, linked to the one before.
        assert row.hash == hashlib.sha256(recorder.canonical(row)).hexdigest()
        assert row.prev_hash == (before.hash if before is not None else recorder.GENESIS)
    report = await verify(db, postgres_chain.org_id)
    assert report.ok
    assert report.checked == len(rows)


@pytest.mark.postgres
async def test_one_call_appends_a_batch_across_organizations_each_to_its_own_chain(postgres_chain: Chain) -> None:
    db = postgres_chain.platform.db
    async with db.session() as session:
        await tenancy.bootstrap(session, "globex", "prod")
        other = (await tenancy.organization_by_slug(session, "globex")).id
    events = [_event(postgres_chain, "a.1"), _event(postgres_chain, "a.2"), _event(postgres_chain, "a.3")]
    elsewhere = recorder.Event(other, "b.1", "denied", transport="rest", actor_type="user")
    events.insert(1, elsewhere)
    async with db.transaction() as connection:
        stored = await recorder.record_many(connection, events)
    assert [(row.organization_id, row.seq) for row in stored] == [
        (postgres_chain.org_id, 1),
        (other, 1),
        (postgres_chain.org_id, 2),
        (postgres_chain.org_id, 3),
    ]
    assert stored[2].prev_hash == stored[0].hash
    assert stored[1].prev_hash == recorder.GENESIS
    assert (await verify(db, postgres_chain.org_id)).checked == 3
    assert (await verify(db, other)).ok


@pytest.mark.postgres
async def test_two_processes_appending_at_once_keep_one_dense_unforked_chain(postgres_chain: Chain) -> None:
    """The function reads the head after taking the organization's chain lock, in a new snapshot: were the
    head read in the statement's first snapshot, concurrent appends would collide on (organization, seq)."""
    url = postgres_chain.platform.settings.effective_database_url
    replicas = [Database(create_engine(url)) for _ in range(2)]

    async def append(db: Database, name: str) -> None:
        async with db.session() as session:
            await recorder.record(session, _event(postgres_chain, name))

    try:
        await asyncio.gather(*(append(replicas[i % 2], f"replica{i % 2}.{i}") for i in range(60)))
    finally:
        for db in replicas:
            await db.dispose()
    rows = await _rows(postgres_chain)
    assert [row.seq for row in rows] == list(range(1, 61))
    assert {row.action for row in rows} == {f"replica{i % 2}.{i}" for i in range(60)}
    report = await verify(postgres_chain.platform.db, postgres_chain.org_id)
    assert report.ok
    assert report.checked == 60


@pytest.mark.postgres
async def test_concurrent_changes_that_reference_the_organization_append_without_deadlocking(
    postgres_chain: Chain,
) -> None:
    """A token's row references its organization, so its INSERT takes PostgreSQL's FOR KEY SHARE lock on the
    organization's row until the transaction ends; the audit event is appended later in that transaction.
    When the append locked that row FOR UPDATE, two such transactions waited on each other and PostgreSQL
    aborted all but one ("deadlock detected"): the calls failed with ``audit_failure``."""
    platform = postgres_chain.platform
    call = Call(principal=local_owner(postgres_chain.org_id), organization="acme", transport="internal")
    names = [f"ci-{i}" for i in range(8)]
    results = await asyncio.gather(
        *(dispatch(platform, call, "token.create", {"name": name, "role": "admin"}) for name in names),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results if isinstance(r, BaseException)] == []
    rows = await _rows(postgres_chain)
    assert sorted(row.arguments["name"] for row in rows if row.action == "token.create") == names
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    assert (await verify(platform.db, postgres_chain.org_id)).ok


@pytest.mark.postgres
async def test_a_database_function_that_hashes_differently_is_refused_and_nothing_is_stored(
    postgres_chain: Chain,
) -> None:
    db = postgres_chain.platform.db
    async with db.session() as session:
        await recorder.record(session, _event(postgres_chain, "before"))
    async with db.session() as session:
        definition = await session.scalar(text("SELECT pg_get_functiondef('testgate_audit_append'::regproc)"))
        assert definition is not None
        assert "after_seq[i], 'UTF8'" in definition
        await session.execute(text(definition.replace("after_seq[i], 'UTF8'", "after_seq[i] || ' ', 'UTF8'")))

    with pytest.raises(ChainMismatch, match="run the migrations"):
        async with db.session() as session:
            await recorder.record(session, _event(postgres_chain, "after"))
    async with db.session(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(AuditEventRow)) == 1
    assert (await verify(db, postgres_chain.org_id)).ok


def _watch_statements(db: Database) -> list[int]:
    """The number of events in each statement on the standing connection."""
    standing = db.standing
    assert standing is not None
    sizes: list[int] = []
    original = standing.fetch

    async def fetch(sql: str, *args: Any) -> list[Any]:
        sizes.append(len(args[0]))
        return await original(sql, *args)

    standing.fetch = fetch  # type: ignore[method-assign]
    return sizes


@pytest.mark.postgres
async def test_a_call_alone_appends_in_its_own_task_and_overlapping_calls_share_one_statement(
    postgres_chain: Chain,
) -> None:
    db = postgres_chain.platform.db
    writer = AuditWriter(db)
    sizes = _watch_statements(db)
    with writer.call():
        await writer.record(_event(postgres_chain, "alone"))
    assert writer._task is None  # no batch task was needed
    with writer.call(), writer.call():
        together = [asyncio.create_task(writer.record(_event(postgres_chain, f"together.{i}"))) for i in range(3)]
        await asyncio.sleep(0)  # each task's first step hands its event over
        assert len(writer._queue) == 3
        await asyncio.gather(*together)
    # An event arriving while a lone one is being written queues behind it.
    first = asyncio.create_task(writer.record(_event(postgres_chain, "first")))
    await asyncio.sleep(0)
    assert not writer.idle
    second = asyncio.create_task(writer.record(_event(postgres_chain, "second")))
    await asyncio.sleep(0)
    assert [event.action for event, _ in writer._queue] == ["second"]
    await asyncio.gather(first, second)

    assert sizes == [1, 3, 1, 1]
    assert [row.action for row in await _rows(postgres_chain)] == [
        "alone",
        "together.0",
        "together.1",
        "together.2",
        "first",
        "second",
    ]
    assert (await verify(db, postgres_chain.org_id)).ok
