"""Executions and what they produce: steps, log lines, tags, artifacts and per-test results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from testgate.store.base import Base, BigIntPK, id_column, utcnow


class ExecutionRow(Base):
    __tablename__ = "executions"
    __table_args__ = (
        UniqueConstraint("workflow_id", "number"),
        # Keyset pages: newest first within an environment, optionally narrowed by workflow or status.
        Index("ix_executions_env_id", "environment_id", "id"),
        Index("ix_executions_env_workflow_id", "environment_id", "workflow_name", "id"),
        Index("ix_executions_env_status_id", "environment_id", "status", "id"),
        Index("ix_executions_status_heartbeat", "status", "heartbeat_at"),
    )

    id: Mapped[str] = id_column()
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    workflow_id: Mapped[str | None] = mapped_column(ForeignKey("workflows.id", ondelete="SET NULL"))
    workflow_name: Mapped[str] = mapped_column(String(63))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="run")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    runner_id: Mapped[str | None] = mapped_column(String(200), default=None)
    # Set by an abort request from any process; the runner holding the execution polls it with its heartbeat.
    abort_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    # Times a runner started it (a requeue after a lost worker runs it again); bounds requeues.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The broker queue it was sent to: it waits there, not in a process's memory (see runner.reaper).
    queue: Mapped[str | None] = mapped_column(String(255), default=None)
    log_lines: Mapped[int] = mapped_column(Integer, default=0)
    log_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    log_truncated: Mapped[bool] = mapped_column(default=False)
    tests_total: Mapped[int] = mapped_column(Integer, default=0)
    tests_passed: Mapped[int] = mapped_column(Integer, default=0)
    tests_failed: Mapped[int] = mapped_column(Integer, default=0)
    tests_skipped: Mapped[int] = mapped_column(Integer, default=0)
    tests_errored: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(200), default=None)


class ExecutionTagRow(Base):
    """Tags as rows so a tag selector is an indexed lookup on both backends."""

    __tablename__ = "execution_tags"
    __table_args__ = (Index("ix_execution_tags_kv", "key", "value", "execution_id"),)

    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class StepRow(Base):
    __tablename__ = "execution_steps"

    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    condition: Mapped[str] = mapped_column(String(16), default="passed")
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class LogLineRow(Base):
    """One line of output. ``seq`` is dense from 1 within an execution; ``step`` is -1 for system lines."""

    __tablename__ = "log_lines"

    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    step: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column()
    text: Mapped[str] = mapped_column(Text)


class ArtifactRow(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("execution_id", "path"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(100))
    is_text: Mapped[bool] = mapped_column()
    storage_key: Mapped[str] = mapped_column(String(1200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ResultRow(Base):
    """One test case's outcome in one execution, parsed from JUnit XML."""

    __tablename__ = "test_results"
    __table_args__ = (
        Index("ix_test_results_execution", "execution_id", "id"),
        Index("ix_test_results_env_test", "environment_id", "classname", "name"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(String(26))
    suite: Mapped[str] = mapped_column(String(500), default="")
    classname: Mapped[str] = mapped_column(String(500), default="")
    name: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    trace: Mapped[str] = mapped_column(Text, default="")
    file: Mapped[str] = mapped_column(String(1024), default="")
