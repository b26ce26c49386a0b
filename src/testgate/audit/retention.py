"""Retention: events older than the retention are purged, and what remains still verifies.

A purge removes a prefix of the chain: every event before the first one inside the retention window.
It refuses to remove a prefix that does not verify (that would launder tampering), leaves a checkpoint
with the seq and hash of the last removed event, and is itself an ``audit.purge`` event whose arguments
repeat that seq and hash, so verification can start from the checkpoint and trust it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from testgate import periodic
from testgate.audit import postgresql, recorder, sink
from testgate.audit.verify import PURGE_ACTION, latest_checkpoint, verify
from testgate.errors import Conflict, TestgateError
from testgate.platform.context import Platform
from testgate.store.audit import AuditCheckpointRow, AuditEventRow
from testgate.store.base import utcnow
from testgate.store.db import Database
from testgate.store.tenancy import Organization

log = structlog.get_logger("testgate.audit")

DEFAULT_INTERVAL = 3600.0


@dataclass(frozen=True)
class Plan:
    """What a purge at ``cutoff`` would remove: events up to ``through_seq`` (None: nothing)."""

    cutoff: datetime
    through_seq: int | None
    count: int


@dataclass(frozen=True)
class PurgeReport:
    organization_id: str
    cutoff: datetime
    purged: int
    checkpoint_seq: int | None = None
    checkpoint_hash: str | None = None

    def arguments(self, older_than_days: int) -> dict[str, Any]:
        """What the purge's audit event records; verification matches the checkpoint against it."""
        return {
            "older_than_days": older_than_days,
            "cutoff": self.cutoff.isoformat(),
            "purged": self.purged,
            "checkpoint_seq": self.checkpoint_seq,
            "checkpoint_hash": self.checkpoint_hash,
        }


def cutoff_for(older_than_days: int, now: datetime | None = None) -> datetime:
    """The time before which events are older than ``older_than_days``."""
    return (now or utcnow()) - timedelta(days=older_than_days)


async def plan(session: AsyncSession, organization_id: str, cutoff: datetime) -> Plan:
    """Which prefix of the chain lies entirely before ``cutoff``."""
    org = AuditEventRow.organization_id == organization_id
    first_kept = await session.scalar(
        select(AuditEventRow.seq).where(org, AuditEventRow.time >= cutoff).order_by(AuditEventRow.seq).limit(1)
    )
    through = (
        first_kept - 1
        if first_kept is not None
        else await session.scalar(select(func.max(AuditEventRow.seq)).where(org))
    )
    if through is None:
        return Plan(cutoff, None, 0)
    count = await session.scalar(select(func.count()).where(org, AuditEventRow.seq <= through)) or 0
    return Plan(cutoff, through if count else None, count)


async def verified_head(source: Database | AsyncSession, organization_id: str, through_seq: int) -> str:
    """The hash of event ``through_seq`` once the chain up to it verifies; ``Conflict`` if it does not."""
    report = await verify(source, organization_id, through=through_seq)
    if report.problem is not None:
        raise Conflict(
            f"the audit chain does not verify ({report.problem.message}); nothing was purged. "
            "Investigate with 'testgate audit verify' before purging.",
            details={"seq": report.problem.seq, "problem": report.problem.kind},
        )
    return report.head_hash


async def purge_through(
    session: AsyncSession, organization_id: str, *, through_seq: int, expected_hash: str, cutoff: datetime
) -> PurgeReport:
    """Delete events up to ``through_seq`` (whose hash was verified as ``expected_hash``) and checkpoint."""
    # The same lock as recorder.record: no event is appended while the chain is cut.
    await postgresql.lock_chain(session, organization_id)
    last = (
        await session.execute(
            select(AuditEventRow.hash, AuditEventRow.time).where(
                AuditEventRow.organization_id == organization_id, AuditEventRow.seq == through_seq
            )
        )
    ).first()
    if last is None:
        checkpoint = await latest_checkpoint(session, organization_id)
        if checkpoint is not None and checkpoint.seq >= through_seq:
            return PurgeReport(organization_id, cutoff, 0)  # another process purged it meanwhile
        raise Conflict(f"audit event seq {through_seq} vanished during the purge; run 'testgate audit verify'")
    if last.hash != expected_hash:
        raise Conflict(f"audit event seq {through_seq} changed during the purge; run 'testgate audit verify'")
    deleted = await session.execute(
        delete(AuditEventRow).where(AuditEventRow.organization_id == organization_id, AuditEventRow.seq <= through_seq)
    )
    purged = int(getattr(deleted, "rowcount", 0))
    session.add(
        AuditCheckpointRow(
            organization_id=organization_id,
            seq=through_seq,
            hash=last.hash,
            time=last.time,
            purged=purged,
            cutoff=cutoff,
        )
    )
    await session.flush()
    return PurgeReport(organization_id, cutoff, purged, through_seq, last.hash)


async def purge(
    platform: Platform, organization_id: str, *, now: datetime | None = None, older_than_days: int | None = None
) -> PurgeReport:
    """Apply the retention (``settings.audit_retention_days`` unless given) outside any request.

    The purge is recorded as an ``audit.purge`` event by the ``system`` actor, in the same transaction.
    """
    days = older_than_days or platform.settings.audit_retention_days
    cutoff = cutoff_for(days, now)
    async with platform.db.session() as session:
        planned = await plan(session, organization_id, cutoff)
    if planned.through_seq is None:
        return PurgeReport(organization_id, cutoff, 0)
    expected = await verified_head(platform.db, organization_id, planned.through_seq)
    async with platform.db.session() as session:
        report = await purge_through(
            session, organization_id, through_seq=planned.through_seq, expected_hash=expected, cutoff=cutoff
        )
        if report.purged:
            event = recorder.Event(
                organization_id=organization_id,
                action=PURGE_ACTION,
                outcome="allowed",
                transport="internal",
                actor_type="system",
                actor_name="retention",
                resources=[checkpoint_resource(report)],
                reason=f"retention of {days} days",
                arguments=report.arguments(days),
            )
            await recorder.record(session, event, sink=sink.from_settings(platform.settings))
    return report


def checkpoint_resource(report: PurgeReport) -> dict[str, str]:
    """The resource a purge acts on, as its audit event names it."""
    return {"type": "audit_checkpoint", "id": str(report.checkpoint_seq), "name": f"seq {report.checkpoint_seq}"}


async def purge_all(platform: Platform, *, now: datetime | None = None) -> list[PurgeReport]:
    """Apply the retention to every organization; one organization's failure does not stop the others."""
    async with platform.db.session() as session:
        organizations = list(await session.scalars(select(Organization.id).order_by(Organization.id)))
    reports = []
    for organization_id in organizations:
        try:
            report = await purge(platform, organization_id, now=now)
        except TestgateError as exc:
            log.error("audit retention purge refused", organization_id=organization_id, reason=str(exc))
            continue
        except (SQLAlchemyError, OSError):
            log.exception("audit retention purge failed", organization_id=organization_id)
            continue
        if report.purged:
            log.info(
                "audit events purged",
                organization_id=organization_id,
                purged=report.purged,
                checkpoint_seq=report.checkpoint_seq,
            )
        reports.append(report)
    return reports


async def retention_loop(platform: Platform, interval_seconds: float = DEFAULT_INTERVAL) -> None:
    """Purge expired events now and then every ``interval_seconds``, until cancelled."""
    await periodic.repeat("audit retention", lambda: purge_all(platform), interval_seconds)


def running(platform: Platform, interval_seconds: float = DEFAULT_INTERVAL) -> AbstractAsyncContextManager[None]:
    """Run ``retention_loop`` in the background while the context is open (the server's lifespan)."""
    return periodic.running("audit retention", lambda: purge_all(platform), interval_seconds)
