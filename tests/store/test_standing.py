"""``store.standing``: one PostgreSQL connection kept for single statements in autocommit. A failed
statement keeps it; a connection the server ended, or a statement cut off mid-way, is replaced; closing
gives it back to the pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio
import asyncpg
import pytest
from tests.conftest import _drop_postgres_database, _postgres_database

from testgate.store.db import Database, create_engine
from testgate.store.standing import StandingConnection

pytestmark = pytest.mark.postgres

PID = "SELECT pg_backend_pid()"


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    url = await _postgres_database()
    database = Database(create_engine(url))
    try:
        yield database
    finally:
        await database.dispose()
        await _drop_postgres_database(url)


def _standing(db: Database) -> StandingConnection:
    assert db.standing is not None
    return db.standing


async def _pid(standing: StandingConnection) -> int:
    return int((await standing.fetch(PID))[0][0])


async def test_statements_run_in_autocommit_on_one_connection_and_a_failed_one_keeps_it(db: Database) -> None:
    standing = _standing(db)
    pid = await _pid(standing)
    await standing.fetch("CREATE TABLE t (n integer PRIMARY KEY)")
    await standing.fetch("INSERT INTO t VALUES ($1)", 1)
    with pytest.raises(asyncpg.UniqueViolationError):
        await standing.fetch("INSERT INTO t VALUES ($1)", 1)
    assert await _pid(standing) == pid
    # Each statement committed on its own: another connection sees the row.
    async with db.engine.connect() as other:
        raw = (await other.get_raw_connection()).driver_connection
        assert await raw.fetchval("SELECT count(*) FROM t") == 1


async def test_a_connection_the_server_ended_is_replaced(db: Database) -> None:
    standing = _standing(db)
    pid = await _pid(standing)
    async with db.engine.connect() as other:
        raw = (await other.get_raw_connection()).driver_connection
        assert await raw.fetchval("SELECT pg_terminate_backend($1)", pid)
    failures = 0
    with anyio.fail_after(10):
        while True:
            try:
                replaced = await _pid(standing)
                break
            except Exception:  # which error depends on when asyncpg noticed the loss
                # Only a statement that found the connection lost mid-way fails; it drops the connection.
                failures += 1
    assert failures <= 1
    assert replaced != pid


async def test_a_statement_cut_off_mid_way_drops_its_connection(db: Database) -> None:
    standing = _standing(db)
    pid = await _pid(standing)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await standing.fetch("SELECT pg_sleep(30)")
    # Whether the cut-off statement still ran is unknown: the next one runs on a new connection.
    assert await _pid(standing) != pid


async def test_closing_gives_the_connection_back_to_the_pool(db: Database) -> None:
    standing = _standing(db)
    await _pid(standing)
    assert db.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    await standing.close()
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await standing.close()


async def test_only_postgresql_has_a_standing_connection() -> None:
    sqlite = Database(create_engine("sqlite+aiosqlite:///:memory:"))
    try:
        assert sqlite.standing is None
    finally:
        await sqlite.dispose()
