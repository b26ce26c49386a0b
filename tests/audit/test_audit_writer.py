"""Group commit of audit events: every event is committed before ``record`` returns, in order, chained,
and one bad event or one impatient caller costs nobody else their event."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from tests.audit.conftest import Chain

from testgate.audit import recorder
from testgate.audit.verify import verify
from testgate.audit.writer import AuditWriter
from testgate.store.audit import AuditEventRow


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


async def test_a_caller_that_goes_away_does_not_take_its_event_back(chain: Chain) -> None:
    writer = AuditWriter(chain.platform.db)
    first = asyncio.create_task(writer.record(_event(chain, "first")))
    impatient = asyncio.create_task(writer.record(_event(chain, "impatient")))
    await asyncio.sleep(0)
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
