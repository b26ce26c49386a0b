"""Retention: a purge removes the expired prefix, leaves an attested checkpoint, and the rest verifies."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from sqlalchemy import func, select

import testgate.operations.audit  # noqa: F401  (registers the audit operations)
from testgate.audit import retention
from testgate.audit.verify import verify
from testgate.errors import ConfirmationRefused, ConfirmationRequired, Conflict
from testgate.operations.context import ConfirmOutcome
from testgate.operations.dispatch import dispatch
from testgate.store.audit import AuditCheckpointRow
from testgate.store.base import utcnow

if TYPE_CHECKING:
    from tests.audit.conftest import Chain


async def _old_and_new(chain: Chain, old: int = 20, new: int = 5) -> None:
    now = utcnow()
    await chain.insert(old, start=now - timedelta(days=400), step=timedelta(days=1))
    await chain.insert(new, start=now - timedelta(days=10), step=timedelta(hours=1))


async def _checkpoints(chain: Chain) -> list[AuditCheckpointRow]:
    async with chain.platform.db.session() as session:
        return list(await session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.seq)))


def _accept(answer: ConfirmOutcome = "accepted", asked: list[str] | None = None) -> Any:
    async def confirm(message: str) -> ConfirmOutcome:
        (asked if asked is not None else []).append(message)
        return answer

    return confirm


async def test_a_purge_removes_the_expired_prefix_and_the_rest_still_verifies(backend_chain: Chain) -> None:
    await _old_and_new(backend_chain)
    before = await backend_chain.events()
    # 400..381 days old: the first 20 events are past the 180-day default.
    report = await retention.purge(backend_chain.platform, backend_chain.org_id)
    assert (report.purged, report.checkpoint_seq, report.checkpoint_hash) == (20, 20, before[19].hash)
    events = await backend_chain.events()
    assert [e.seq for e in events] == list(range(21, 27))
    purge_event = events[-1]
    assert (purge_event.action, purge_event.actor_type, purge_event.transport) == ("audit.purge", "system", "internal")
    assert purge_event.arguments["checkpoint_seq"] == 20
    assert purge_event.resources == [{"type": "audit_checkpoint", "id": "20", "name": "seq 20"}]
    verified = await verify(backend_chain.platform.db, backend_chain.org_id)
    assert verified.ok, verified.problem
    assert (verified.checkpoint and verified.checkpoint.seq, verified.first_seq, verified.checked) == (20, 21, 6)


async def test_a_second_purge_continues_from_the_first_checkpoint(backend_chain: Chain) -> None:
    await _old_and_new(backend_chain)
    await retention.purge(backend_chain.platform, backend_chain.org_id)
    report = await retention.purge(backend_chain.platform, backend_chain.org_id, older_than_days=5)
    # The five 10-day-old events go; the first purge's event is recent and stays.
    assert (report.purged, report.checkpoint_seq) == (5, 25)
    assert [c.seq for c in await _checkpoints(backend_chain)] == [20, 25]
    assert (await verify(backend_chain.platform.db, backend_chain.org_id)).ok


async def test_purging_everything_lets_the_chain_continue_from_the_checkpoint(backend_chain: Chain) -> None:
    await backend_chain.insert(5, start=utcnow() - timedelta(days=300))
    report = await retention.purge(backend_chain.platform, backend_chain.org_id)
    assert report.purged == 5
    await dispatch(backend_chain.platform, backend_chain.call(environment="dev"), "label.list", {})
    assert [e.seq for e in await backend_chain.events()] == [6, 7]
    assert (await verify(backend_chain.platform.db, backend_chain.org_id)).ok


async def test_nothing_expired_means_no_purge_no_checkpoint_and_no_event(backend_chain: Chain) -> None:
    await backend_chain.insert(3, start=utcnow() - timedelta(days=1))
    report = await retention.purge(backend_chain.platform, backend_chain.org_id)
    assert (report.purged, report.checkpoint_seq) == (0, None)
    assert len(await backend_chain.events()) == 3
    assert await _checkpoints(backend_chain) == []


# Tamper: an expired event edited before the purge; purging it would launder the evidence.
async def test_a_purge_refuses_to_delete_a_prefix_that_does_not_verify(backend_chain: Chain) -> None:
    await _old_and_new(backend_chain)
    await backend_chain.sql("UPDATE audit_events SET reason = 'nothing' WHERE organization_id = :org AND seq = 3")
    with pytest.raises(Conflict, match=r"event seq 3 \(id .*\) was modified"):
        await retention.purge(backend_chain.platform, backend_chain.org_id)
    assert len(await backend_chain.events()) == 25
    assert await _checkpoints(backend_chain) == []


async def test_the_purge_operation_asks_first_with_the_exact_count(backend_chain: Chain) -> None:
    await _old_and_new(backend_chain)
    asked: list[str] = []
    out = await dispatch(backend_chain.platform, backend_chain.call(confirm=_accept(asked=asked)), "audit.purge", {})
    assert out.model_dump()["purged"] == 20
    assert "Permanently delete 20 audit event(s) of 'acme' older than 180 day(s)" in asked[0]
    last = (await backend_chain.events())[-1]
    assert (last.action, last.outcome, last.confirmation) == ("audit.purge", "allowed", "accepted")
    assert last.arguments["checkpoint_seq"] == 20
    assert (await verify(backend_chain.platform.db, backend_chain.org_id)).ok


async def test_a_declined_or_impossible_purge_confirmation_deletes_nothing(chain: Chain) -> None:
    await _old_and_new(chain)
    with pytest.raises(ConfirmationRequired):
        await dispatch(chain.platform, chain.call(), "audit.purge", {"older_than_days": 30})
    with pytest.raises(ConfirmationRefused, match="declined"):
        await dispatch(chain.platform, chain.call(confirm=_accept("declined")), "audit.purge", {})
    async with chain.platform.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(AuditCheckpointRow)) == 0
    assert [e.outcome for e in (await chain.events())[-2:]] == ["denied", "denied"]


async def test_the_retention_loop_purges_every_organization_in_the_background(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _old_and_new(chain)
    passes: list[list[retention.PurgeReport]] = []
    done = anyio.Event()
    real = retention.purge_all

    async def observed(platform: Any) -> list[retention.PurgeReport]:
        passes.append(await real(platform))
        done.set()
        return passes[-1]

    monkeypatch.setattr(retention, "purge_all", observed)
    with anyio.fail_after(10):
        async with retention.running(chain.platform, interval_seconds=3600):
            await done.wait()
    assert [r.purged for r in passes[0]] == [20]
    assert (await verify(chain.platform.db, chain.org_id)).ok
