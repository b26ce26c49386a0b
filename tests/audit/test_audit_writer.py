"""Group commit of audit events: every event is committed before ``record`` returns, in order, chained,
and one bad event or one impatient caller costs nobody else their event."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.audit.conftest import Chain

from testgate.audit import recorder
from testgate.audit.verify import verify
from testgate.audit.writer import AuditWriter
from testgate.store.audit import AuditEventRow
from testgate.store.db import Database, create_engine


def _event(chain: Chain, action: str, **fields: object) -> recorder.Event:
    values: dict[str, object] = {
        "organization_id": chain.org_id,
        "action": action,
        "outcome": "allowed",
        "transport": "internal",
        "actor_type": "local",
    }
    values.update(fields)
    return recorder.Event(**values)  # type: ignore[arg-type]


async def _actions(chain: Chain) -> list[str]:
    async with chain.platform.db.session() as s:
        return list(await s.scalars(select(AuditEventRow.action).order_by(AuditEventRow.seq)))


async def test_concurrent_events_share_commits_and_keep_the_chain_dense(backend_chain: Chain) -> None:
    writer = AuditWriter(backend_chain.platform.db)
    commits = 0
    original = writer._commit

    async def counting(events: list[recorder.Event]) -> None:
        nonlocal commits
        commits += 1
        await original(events)

    writer._commit = counting  # type: ignore[method-assign]
    await asyncio.gather(*(writer.record(_event(backend_chain, f"read.{i}")) for i in range(60)))
    actions = await _actions(backend_chain)
    # Committed in the order they were handed over, and far fewer commits than events.
    assert actions == [f"read.{i}" for i in range(60)]
    assert commits < 60 / 2
    report = await verify(backend_chain.platform.db, backend_chain.org_id)
    assert report.ok
    assert report.checked == 60


async def test_one_bad_event_fails_only_its_own_caller(chain: Chain) -> None:
    writer = AuditWriter(chain.platform.db)
    bad = _event(chain, "bad", outcome=None)  # NOT NULL: the database refuses this row
    results = await asyncio.gather(
        writer.record(_event(chain, "good.1")),
        writer.record(bad),
        writer.record(_event(chain, "good.2")),
        return_exceptions=True,
    )
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], RuntimeError)
    assert await _actions(chain) == ["good.1", "good.2"]
    assert (await verify(chain.platform.db, chain.org_id)).ok


def _watch_direct_writes(db: Any) -> list[tuple[int, str]]:
    """From now on, each direct write of ``db`` (at once or waited for): (events written, thread it ran in)."""
    writes: list[tuple[int, str]] = []
    original, original_now = db.write_direct, db.write_direct_now

    def watched(work: Any) -> Any:
        def run(connection: Any) -> Any:
            rows = work(connection)
            writes.append((len(rows), threading.current_thread().name))
            return rows

        return run

    async def waited(work: Any, *, now: bool = True) -> Any:
        return await original(watched(work), now=now)

    db.write_direct = waited
    db.write_direct_now = lambda work: original_now(watched(work))
    return writes


async def test_an_event_alone_is_written_at_once_on_the_loop_and_a_large_batch_in_the_thread(chain: Chain) -> None:
    """``store.direct``: SQLite's share of a large batch overlaps with the loop's work in the writer's thread."""
    db = chain.platform.db
    writer = AuditWriter(db)
    threads = _watch_direct_writes(db)
    alone = writer.record(_event(chain, "alone"))
    with pytest.raises(StopIteration):
        alone.send(None)  # committed without suspending once: no task, no hand-off
    assert threads == [(1, threading.current_thread().name)]
    async with db.session():  # the turn is taken while the next events arrive: they make one batch
        pending = [asyncio.create_task(writer.record(_event(chain, f"read.{i}"))) for i in range(10)]
        await asyncio.sleep(0)  # each task's first step hands its event over
        assert len(writer._queue) == 10
    await asyncio.gather(*pending)
    assert threads[0] == (1, threading.current_thread().name)
    assert [(size, name.startswith("testgate-sqlite-direct")) for size, name in threads[1:]] == [(10, True)]
    assert (await verify(db, chain.org_id)).ok


async def test_while_calls_overlap_their_events_share_the_queue_instead_of_a_commit_each(chain: Chain) -> None:
    """One call alone commits its event at once; calls under way together go through the group commit."""
    db = chain.platform.db
    writer = AuditWriter(db)
    writes = _watch_direct_writes(db)
    with writer.call():
        alone = writer.record(_event(chain, "alone"))
        with pytest.raises(StopIteration):
            alone.send(None)  # committed without suspending
    with writer.call(), writer.call():
        together = [asyncio.create_task(writer.record(_event(chain, f"together.{i}"))) for i in range(3)]
        await asyncio.sleep(0)
        assert len(writer._queue) == 3  # none went ahead on its own
        await asyncio.gather(*together)

    assert [size for size, _ in writes] == [1, 3]
    assert await _actions(chain) == ["alone", "together.0", "together.1", "together.2"]
    assert (await verify(db, chain.org_id)).ok


async def test_a_caller_that_goes_away_does_not_take_its_event_back(chain: Chain) -> None:
    db = chain.platform.db
    writer = AuditWriter(db)
    async with db.session():  # another write holds the turn: the events queue for the writer's task
        first = asyncio.create_task(writer.record(_event(chain, "first")))
        impatient = asyncio.create_task(writer.record(_event(chain, "impatient")))
        await asyncio.sleep(0)
        assert len(writer._queue) == 2
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
    await first
    await writer.close()
    assert await _actions(chain) == ["first", "impatient"]


async def test_a_read_session_reads_while_a_writer_holds_sqlites_write_lock(chain: Chain) -> None:
    db = chain.platform.db
    async with db.session() as writing:
        await recorder.record(writing, _event(chain, "uncommitted"))
        # A second writer would queue behind this one (and time out here); a reader does not.
        async with asyncio.timeout(5), db.session(write=False) as reading:
            count = await reading.scalar(select(func.count()).select_from(AuditEventRow))
    assert count == 0  # its snapshot predates the writer's commit
    assert await _actions(chain) == ["uncommitted"]


async def test_direct_and_session_appends_store_the_same_values_in_one_chain(chain: Chain) -> None:
    """``store.direct``: the group commit writes SQLite without SQLAlchemy, and must store exactly what a
    session stores (times, JSON, unicode) in the same chain as the events of mutating calls."""
    db = chain.platform.db
    assert db.direct_writes
    writes = _watch_direct_writes(db)
    fields: dict[str, Any] = {
        "environment_id": chain.env_id,
        "resources": [{"type": "execution", "id": "01abc", "name": "smoke · nightly"}],
        "arguments": {"id": "01abc", "nested": {"n": 3, "ok": True, "none": None}, "text": "naïve ✓"},
        "reason": "",
        "request_id": "req-1",
        "user_agent": "agent/1.0",
    }
    writer = AuditWriter(db)
    async with db.session() as session:
        await recorder.record(session, _event(chain, "by.session.1", **fields))
    await writer.record(_event(chain, "by.direct", **fields))
    async with db.session() as session:
        await recorder.record(session, _event(chain, "by.session.2", **fields))
    assert len(writes) == 1

    async with db.session() as session:
        rows = list(await session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)))
    assert [(r.seq, r.action) for r in rows] == [(1, "by.session.1"), (2, "by.direct"), (3, "by.session.2")]
    shown = ("environment_id", "resources", "arguments", "reason", "request_id", "user_agent", "confirmation")
    for row in rows:
        assert {name: getattr(row, name) for name in shown} == {name: getattr(rows[0], name) for name in shown}
        assert row.time.tzinfo is not None
        # The hash stored is the hash of the values read back: the direct path encodes like the ORM.
        assert row.hash == hashlib.sha256(recorder.canonical(row)).hexdigest()
    assert rows[0].time <= rows[1].time <= rows[2].time
    assert rows[1].prev_hash == rows[0].hash
    assert rows[2].prev_hash == rows[1].hash
    assert (await verify(db, chain.org_id)).ok


HOLD_THE_WRITE_LOCK = """
import asyncio, sys
from testgate.audit import recorder
from testgate.store.db import Database, create_engine

async def main():
    db = Database(create_engine(sys.argv[1]))
    async with db.session() as session:
        await recorder.record(session, recorder.Event(
            organization_id=sys.argv[2], action="other.process", outcome="allowed",
            transport="cli", actor_type="local"))
        print("holding", flush=True)
        await asyncio.sleep(1.0)  # how long the lock is held; the parent waits on the lock, not on this
    await db.dispose()

asyncio.run(main())
"""


async def test_a_direct_append_waits_for_another_processs_writer_and_links_after_it(chain: Chain) -> None:
    """Another process holding SQLite's write lock with an uncommitted event: the direct append waits
    (busy handler) and then reads the head that process committed, so the chain does not fork."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLD_THE_WRITE_LOCK,
        chain.platform.settings.effective_database_url,
        chain.org_id,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"holding"
    await AuditWriter(chain.platform.db).record(_event(chain, "this.process"))
    assert await child.wait() == 0
    assert await _actions(chain) == ["other.process", "this.process"]
    report = await verify(chain.platform.db, chain.org_id)
    assert report.ok
    assert report.checked == 2


async def test_direct_writes_need_a_database_file(tmp_path: Path) -> None:
    memory = Database(create_engine("sqlite+aiosqlite:///:memory:"))
    on_file = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))
    try:
        assert not memory.direct_writes  # another connection would see another, empty database
        assert on_file.direct_writes
    finally:
        await memory.dispose()
        await on_file.dispose()
