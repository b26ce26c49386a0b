"""Audit events: append-only, chained per organization by hash; and the checkpoints purges leave behind."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from testgate.store.base import Base, BigIntPK, utcnow


class AuditEventRow(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_org_seq", "organization_id", "seq", unique=True),
        Index("ix_audit_events_org_time", "organization_id", "time"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(26), unique=True)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    organization_id: Mapped[str] = mapped_column(String(26))
    environment_id: Mapped[str | None] = mapped_column(String(26), default=None)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64), default=None)
    actor_name: Mapped[str] = mapped_column(String(320), default="")
    transport: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    resources: Mapped[list[Any]] = mapped_column(default=list)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    confirmation: Mapped[str | None] = mapped_column(String(16), default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    source_address: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(400), default=None)
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpointRow(Base):
    """Where a retention purge cut the chain: the seq and hash of the last event it deleted.

    Verification of what remains starts here instead of at the genesis hash; the purge's own audit
    event (``audit.purge``) repeats the seq and hash, so a forged checkpoint does not verify.
    """

    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index("ix_audit_checkpoints_org_seq", "organization_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(String(26))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column()
    purged: Mapped[int] = mapped_column(BigInteger)
    cutoff: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
