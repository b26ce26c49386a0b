"""Output models shared by several operations (what MCP tools return as structured content)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from testgate.store.executions import ExecutionRow, StepRow


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# A time an input names: one without an offset is UTC (``2026-12-07`` is midnight UTC), never a naive value.
UtcTime = Annotated[datetime, AfterValidator(_utc)]


class TestCounts(BaseModel):
    __test__ = False
    total: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errored: int = 0


class ExecutionSummary(BaseModel):
    id: str
    workflow: str
    number: int
    status: str = Field(description="queued, running, passed, failed, aborted or timed_out")
    reason: str = ""
    source: str = Field(description="run (started here) or upload (results from an external CI)")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    tests: TestCounts

    @classmethod
    def of(cls, row: ExecutionRow, tags: dict[str, str]) -> ExecutionSummary:
        return cls(
            id=row.id,
            workflow=row.workflow_name,
            number=row.number,
            status=row.status,
            reason=row.reason,
            source=row.source,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_ms=row.duration_ms,
            tags=tags,
            tests=TestCounts(
                total=row.tests_total,
                passed=row.tests_passed,
                failed=row.tests_failed,
                skipped=row.tests_skipped,
                errored=row.tests_errored,
            ),
        )


class StepInfo(BaseModel):
    index: int
    name: str
    status: str
    condition: str
    exit_code: int | None = None
    reason: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None

    @classmethod
    def of(cls, row: StepRow) -> StepInfo:
        return cls(
            index=row.index,
            name=row.name,
            status=row.status,
            condition=row.condition,
            exit_code=row.exit_code,
            reason=row.reason,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_ms=row.duration_ms,
        )


class ExecutionDetail(ExecutionSummary):
    config: dict[str, Any] = Field(
        default_factory=dict, description="config values of this run; sensitive ones are shown as ***"
    )
    steps: list[StepInfo] = Field(default_factory=list)
    log_lines: int = 0
    log_truncated: bool = False
    dashboard_url: str = ""
    runner: str | None = Field(
        default=None, description="the runner that took it: host:pid, and a Celery worker's name (none yet: queued)"
    )
    attempts: int = Field(default=0, description="runs started; more than 1 after a lost worker's retry")


class Deleted(BaseModel):
    deleted: bool
    message: str
