"""Verifying an organization's chain: every event's hash, every link, dense sequence numbers.

The walk goes in seq order, a keyset batch at a time (constant memory), from the latest retention
checkpoint (or the genesis hash) and stops at the first problem, which it names precisely:

    modified    the event's content no longer matches its hash
    missing     a seq number is absent (an event was removed), or the chain ends before an anchor
    reordered   the event is chained after another event than the one now before it
    unlinked    the event is intact but does not link to its predecessor (that one was replaced)
    inserted    a seq number appears twice
    anchor      an externally kept (seq, hash) no longer matches (the chain was rewritten)
    checkpoint  the latest checkpoint is not attested by an ``audit.purge`` event of the chain

A chain can still be cut at its end or rewritten whole by someone who can write the database; ship
events elsewhere (the audit file sink) and pass a known (seq, hash) as ``anchor`` to detect that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select

from testgate.audit import query
from testgate.audit.recorder import GENESIS, digest
from testgate.store.audit import AuditCheckpointRow, AuditEventRow

ProblemKind = Literal["modified", "missing", "reordered", "unlinked", "inserted", "anchor", "checkpoint"]
PURGE_ACTION = "audit.purge"


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    seq: int
    event_id: str | None
    message: str


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    time: datetime


@dataclass(frozen=True)
class VerifyReport:
    """What a walk found: how many events it checked, where the chain ends, the first problem if any."""

    organization_id: str
    checked: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str
    checkpoint: Checkpoint | None
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Walk:
    """The expected next seq and prev_hash, advanced event by event."""

    def __init__(self, checkpoint: Checkpoint | None, anchor: tuple[int, str] | None) -> None:
        self.checkpoint = checkpoint
        self.anchor = anchor
        self.seq = checkpoint.seq + 1 if checkpoint else 1
        self.prev = checkpoint.hash if checkpoint else GENESIS
        self.checked = 0
        self.first_seq: int | None = None
        self.attested = checkpoint is None

    def check(self, row: query.AnyRow) -> Problem | None:
        """The problem ``row`` shows, before any lookup elsewhere in the chain."""
        if row.seq > self.seq:
            span = f"event seq {self.seq} is" if row.seq == self.seq + 1 else f"events seq {self.seq}-{row.seq - 1} are"
            return Problem("missing", self.seq, None, f"{span} missing (removed)")
        if row.seq < self.seq:
            return Problem("inserted", row.seq, row.event_id, f"{_name(row)} appears twice (an event was inserted)")
        if row.prev_hash == self.prev and digest(row) != row.hash:
            return Problem("modified", row.seq, row.event_id, f"{_name(row)} was modified")
        if self.anchor is not None and row.seq == self.anchor[0] and row.hash != self.anchor[1]:
            return Problem("anchor", row.seq, row.event_id, f"{_name(row)} does not match the anchor's hash")
        return None

    def advance(self, row: query.AnyRow) -> None:
        self.first_seq = row.seq if self.first_seq is None else self.first_seq
        self.seq, self.prev = row.seq + 1, row.hash
        self.checked += 1
        if not self.attested and row.action == PURGE_ACTION and row.outcome == "allowed":
            assert self.checkpoint is not None
            args = row.arguments or {}
            self.attested = (args.get("checkpoint_seq"), args.get("checkpoint_hash")) == (
                self.checkpoint.seq,
                self.checkpoint.hash,
            )

    def finish(self) -> Problem | None:
        if self.anchor is not None and self.anchor[0] >= self.seq:
            return Problem(
                "missing",
                self.seq,
                None,
                f"event seq {self.seq} is missing (removed): the chain ends at seq {self.seq - 1} "
                f"but the anchor names seq {self.anchor[0]}",
            )
        if not self.attested:
            assert self.checkpoint is not None
            return Problem(
                "checkpoint",
                self.checkpoint.seq,
                None,
                f"the retention checkpoint at seq {self.checkpoint.seq} is not attested by an {PURGE_ACTION} "
                "event (the checkpoint was forged or the purge event removed)",
            )
        return None


def _name(row: query.AnyRow) -> str:
    return f"event seq {row.seq} (id {row.event_id})"


async def latest_checkpoint(source: query.Source, organization_id: str) -> Checkpoint | None:
    """The organization's most recent retention checkpoint."""
    stmt = (
        select(AuditCheckpointRow.seq, AuditCheckpointRow.hash, AuditCheckpointRow.time)
        .where(AuditCheckpointRow.organization_id == organization_id)
        .order_by(AuditCheckpointRow.seq.desc())
        .limit(1)
    )
    rows = await query.fetch(source, stmt)
    return Checkpoint(rows[0].seq, rows[0].hash, rows[0].time) if rows else None


async def _unlinked(source: query.Source, organization_id: str, row: query.AnyRow, walk: _Walk) -> Problem:
    """Classify an event whose prev_hash does not name the event before it."""
    stmt = select(AuditEventRow.seq).where(
        AuditEventRow.organization_id == organization_id, AuditEventRow.hash == row.prev_hash
    )
    found: Sequence[query.AnyRow] = await query.fetch(source, stmt.limit(1))
    before = walk.seq - 1
    if found:
        return Problem(
            "reordered",
            row.seq,
            row.event_id,
            f"{_name(row)} is out of order: it was chained after the event now at seq {found[0].seq}, "
            f"not after seq {before} (events were reordered)",
        )
    if digest(row) != row.hash:
        return Problem(
            "modified",
            row.seq,
            row.event_id,
            f"{_name(row)} was modified: neither its hash nor its link to seq {before} checks out "
            "(it was edited, or events before it were removed and the rest renumbered)",
        )
    return Problem(
        "unlinked",
        row.seq,
        row.event_id,
        f"{_name(row)} does not link to seq {before}: the event at seq {before} was replaced, "
        "or events before it were removed and renumbered",
    )


async def _walk(
    source: query.Source,
    organization_id: str,
    checkpoint: Checkpoint | None,
    anchor: tuple[int, str] | None,
    through: int | None,
    size: int,
) -> VerifyReport:
    walk = _Walk(checkpoint, anchor)

    def report(problem: Problem | None) -> VerifyReport:
        last = walk.seq - 1 if walk.checked else None
        return VerifyReport(organization_id, walk.checked, walk.first_seq, last, walk.prev, checkpoint, problem)

    filters = query.Filters(through_seq=through)
    async for rows in query.batches(source, organization_id, filters, after_seq=walk.seq - 1, size=size):
        for row in rows:
            problem = walk.check(row)
            if problem is None and row.prev_hash != walk.prev:
                problem = await _unlinked(source, organization_id, row, walk)
            if problem is not None:
                return report(problem)
            walk.advance(row)
    if through is not None and walk.seq <= through:
        return report(Problem("missing", walk.seq, None, f"event seq {walk.seq} is missing (removed)"))
    return report(walk.finish() if through is None else None)


async def verify(
    source: query.Source,
    organization_id: str,
    *,
    anchor: tuple[int, str] | None = None,
    through: int | None = None,
    batch: int = query.BATCH,
) -> VerifyReport:
    """Walk ``organization_id``'s chain (up to seq ``through``, or all of it) and report the first problem."""
    checkpoint = await latest_checkpoint(source, organization_id)
    report = await _walk(source, organization_id, checkpoint, anchor, through, batch)
    if report.problem is not None and report.problem.kind in ("missing", "unlinked", "checkpoint"):
        # A purge may have run while we walked: if it moved the checkpoint, walk again from there.
        newer = await latest_checkpoint(source, organization_id)
        if newer != checkpoint:
            report = await _walk(source, organization_id, newer, anchor, through, batch)
    return report
