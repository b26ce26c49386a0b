"""The connection pool: on an SQLite file, connections are kept, never opened and closed per call.

An aiosqlite connection is a thread of its own plus the pragmas; SQLAlchemy's default pool for a file
(5 kept + 10 overflow) opened and closed one for about one call in four at sixteen at a time. The
settings ``database_pool_size`` and ``database_pool_overflow`` reach the engine of a process that
keeps the store (``runtime.database_for``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import event, text
from tests.conftest import _drop_postgres_database, _postgres_database

from testgate.config import Settings
from testgate.runtime import database_for
from testgate.store.db import SQLITE_POOL, Database, create_engine


def _count_connects(db: Database) -> list[int]:
    opened = [0]

    def connected(*_: Any) -> None:
        opened[0] += 1

    event.listen(db.engine.sync_engine, "connect", connected)
    return opened


async def _reads_at_once(db: Database, count: int, hold: float = 0.01) -> None:
    async def read() -> None:
        async with db.session(write=False) as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
            await asyncio.sleep(hold)  # everyone holds a connection at the same time

    await asyncio.gather(*(read() for _ in range(count)))


async def test_sixteen_calls_at_a_time_open_at_most_sixteen_connections_and_keep_them(tmp_path: Path) -> None:
    db = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}"))
    opened = _count_connects(db)
    try:
        for _ in range(10):
            await _reads_at_once(db, 16)
        # SQLAlchemy's default (5 + 10) opens and closes overflow connections every round: over a hundred here.
        assert opened[0] <= 16
        assert db.engine.sync_engine.pool.checkedin() == opened[0]  # type: ignore[attr-defined]  # all kept
    finally:
        await db.dispose()


async def test_calls_beyond_the_pool_wait_for_a_connection_instead_of_opening_one(tmp_path: Path) -> None:
    db = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", pool_size=2, pool_overflow=0))
    opened = _count_connects(db)
    try:
        for _ in range(3):
            await _reads_at_once(db, 8)  # every call is served, two at a time
        assert opened[0] <= 2
    finally:
        await db.dispose()


async def test_the_settings_size_the_pool_of_a_process_that_keeps_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TESTGATE_DATABASE_POOL_SIZE", "3")
    monkeypatch.setenv("TESTGATE_DATABASE_POOL_OVERFLOW", "1")
    db = database_for(Settings())
    opened = _count_connects(db)
    try:
        await _reads_at_once(db, 6)
        assert opened[0] <= 4  # three kept and one overflow, however the six calls interleave
        assert db.engine.sync_engine.pool.size() == 3  # type: ignore[attr-defined]
        assert db.engine.sync_engine.pool.checkedin() == 3  # type: ignore[attr-defined]  # an overflow one was closed
    finally:
        await db.dispose()
    monkeypatch.delenv("TESTGATE_DATABASE_POOL_SIZE")
    monkeypatch.delenv("TESTGATE_DATABASE_POOL_OVERFLOW")
    unset = database_for(Settings())
    assert unset.engine.sync_engine.pool.size() == SQLITE_POOL[0]  # type: ignore[attr-defined]
    await unset.dispose()


@pytest.mark.parametrize(("name", "value"), [("POOL_SIZE", "0"), ("POOL_SIZE", "many"), ("POOL_OVERFLOW", "-1")])
def test_a_pool_setting_out_of_range_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"TESTGATE_DATABASE_{name}", value)
    with pytest.raises(ValidationError, match=f"database_{name.lower()}"):
        Settings()


async def test_sqlite_in_memory_keeps_its_single_connection_whatever_the_settings() -> None:
    db = Database(create_engine("sqlite+aiosqlite:///:memory:", pool_size=3, pool_overflow=3))
    try:
        async with db.session() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
        async with db.session(write=False) as session:  # the same database: the same connection
            assert (await session.execute(text("SELECT x FROM t"))).scalar_one() == 1
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_on_postgresql_sixteen_calls_at_a_time_keep_their_connections() -> None:
    """The same on PostgreSQL: 20 kept (SQLAlchemy's 5 + 10, and testgate's former 10 + 20, opened and
    closed the connections beyond the first ones every round)."""
    url = await _postgres_database()
    db = Database(create_engine(url))
    opened = _count_connects(db)
    try:
        for _ in range(10):
            await _reads_at_once(db, 16)
        assert opened[0] <= 16
    finally:
        await db.dispose()
        await _drop_postgres_database(url)


async def _backend_pids(db: Database, count: int) -> list[int]:
    """The server process of each of ``count`` connections checked out at once (all returned after)."""
    pids: list[int] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with db.session(write=False) as session:
            pids.append(int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
            if len(pids) == count:
                started.set()
            await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(count)]
    waiting = asyncio.create_task(started.wait())
    try:
        # A session that fails must fail the test, not leave the others waiting for it forever.
        await asyncio.wait([waiting, *tasks], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        release.set()
    await asyncio.gather(*tasks)
    assert len(pids) == count
    return pids


@pytest.mark.postgres
async def test_on_postgresql_connections_the_server_ended_are_replaced_at_checkout_without_a_failed_call() -> None:
    # A restart or failover ends every server process; the pool's check finds the first dead connection,
    # discards every connection opened before it, and no call sees the loss.
    url = await _postgres_database()
    db = Database(create_engine(url))
    try:
        before = await _backend_pids(db, 3)
        admin = Database(create_engine(url))  # a connection of another pool ends them
        try:
            async with admin.session(write=False) as session:
                for pid in before:
                    # With a timeout it returns once the process has ended, not once it was signalled.
                    ended = text("SELECT pg_terminate_backend(:p, 10000)")
                    assert (await session.execute(ended, {"p": pid})).scalar_one()
        finally:
            await admin.dispose()
        after = await _backend_pids(db, 3)
        assert not set(after) & set(before)
    finally:
        await db.dispose()
        await _drop_postgres_database(url)


@pytest.mark.postgres
async def test_on_postgresql_the_checkout_check_is_one_query() -> None:
    # SQLAlchemy's pool_pre_ping sends BEGIN, an empty query and ROLLBACK on asyncpg: three round trips.
    url = await _postgres_database()
    db = Database(create_engine(url))
    sent: list[str] = []
    try:
        async with db.engine.connect() as connection:  # opened, so the next checkout reuses it
            raw = (await connection.get_raw_connection()).driver_connection
            raw.add_query_logger(lambda record: sent.append(record.query))
        async with db.session(write=False) as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
        assert sent[0] == "SELECT 1"
        assert sent[1].startswith("BEGIN")
    finally:
        await db.dispose()
        await _drop_postgres_database(url)
