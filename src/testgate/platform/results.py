"""Per-test results: stored from JUnit reports (a run's workspace or an upload), read by page.

Counters on the execution (``tests_total``, ``tests_failed``…) are kept in step with the rows.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pydantic import BaseModel, Field
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from testgate.errors import InvalidInput, LimitExceeded, NotFound, TestgateError
from testgate.ids import is_slug
from testgate.platform import executions, globs
from testgate.platform.executions import TERMINAL
from testgate.platform.junit import STATUSES, ParsedResult, Status, cut, parse_junit
from testgate.platform.pagination import clamp_limit, decode_int_cursor, encode_cursor
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow, ResultRow
from testgate.store.tenancy import Environment

CURSOR = "results"  # the list a cursor belongs to (``pagination.encode_cursor``)

if TYPE_CHECKING:
    from testgate.platform.context import Platform

MAX_REPORTS = 1000  # report files per execution
_BATCH = 1000  # rows per INSERT: well under SQLite's bound-parameter limit


async def store_results(session: AsyncSession, execution: ExecutionRow, results: Sequence[ParsedResult]) -> None:
    """Insert ``results`` for ``execution`` in bulk and add them to its counters."""
    rows = [
        {
            "execution_id": execution.id,
            "environment_id": execution.environment_id,
            "suite": r.suite,
            "classname": r.classname,
            "name": r.name,
            "status": r.status,
            "duration_ms": r.duration_ms,
            "message": r.message,
            "trace": r.trace,
            "file": r.file,
        }
        for r in results
    ]
    for start in range(0, len(rows), _BATCH):
        await session.execute(insert(ResultRow), rows[start : start + _BATCH])
    counts = Counter(r.status for r in results)
    execution.tests_total = (execution.tests_total or 0) + len(results)
    execution.tests_passed = (execution.tests_passed or 0) + counts["passed"]
    execution.tests_failed = (execution.tests_failed or 0) + counts["failed"]
    execution.tests_skipped = (execution.tests_skipped or 0) + counts["skipped"]
    execution.tests_errored = (execution.tests_errored or 0) + counts["errored"]
    await session.flush()


@dataclass
class IngestReport:
    """What ``ingest_workspace`` did: files stored, tests found, and one line per problem."""

    files: list[str] = field(default_factory=list)
    tests: int = 0
    problems: list[str] = field(default_factory=list)


async def ingest_workspace(
    platform: Platform, execution_id: str, workspace: Path, patterns: Sequence[str]
) -> IngestReport:
    """Parse and store every JUnit file matching ``patterns``; a bad file is reported, not fatal."""
    async with platform.db.session() as session:
        if await session.get(ExecutionRow, execution_id) is None:
            raise NotFound(f"execution {execution_id!r} not found")
    scan = await asyncio.to_thread(globs.scan, workspace, patterns, max_found=MAX_REPORTS)
    report = IngestReport(problems=list(scan.problems))
    if not scan.found:
        report.problems.append(f"no JUnit file matched {', '.join(patterns)}")
    limit = platform.settings.runner.max_junit_bytes
    for found in scan.found:
        try:
            parsed = await asyncio.to_thread(_read_report, workspace, found, limit)
            async with platform.db.session() as session:
                execution = await session.get(ExecutionRow, execution_id)
                if execution is None:
                    raise NotFound(f"execution {execution_id!r} was deleted")
                await store_results(session, execution, parsed)
        except NotFound:
            raise
        except TestgateError as exc:
            report.problems.append(str(exc))
            continue
        except OSError as exc:
            report.problems.append(f"{found.relative}: {exc.strerror or exc}")
            continue
        report.files.append(found.relative)
        report.tests += len(parsed)
    return report


def _read_report(workspace: Path, found: globs.Found, limit: int) -> list[ParsedResult]:
    """Read at most ``limit`` bytes of one report (refusing a bigger one) and parse it."""
    with globs.open_inside(workspace, found) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise LimitExceeded(f"{found.relative}: larger than the JUnit limit of {limit} bytes; skipped")
    return parse_junit(data, source=found.relative)


async def upload(
    session: AsyncSession,
    env: Environment,
    *,
    name: str,
    files: Sequence[tuple[str, bytes]],
    tags: Mapping[str, str],
    created_by: str,
    max_file_bytes: int | None = None,
) -> ExecutionRow:
    """A finished execution from an external CI's JUnit files; any bad file refuses the whole upload."""
    if not is_slug(name):
        raise InvalidInput(f"{name!r}: the name must be lowercase letters, digits and '-' (like a workflow)")
    if not files:
        raise InvalidInput("upload at least one JUnit file")
    parsed: list[ParsedResult] = []
    for filename, data in files:
        # Every file is parsed before anything is written, so a bad one leaves no trace.
        parsed += await asyncio.to_thread(_parse_upload, data, filename, max_file_bytes)
    execution = await executions.create_external(session, env, name=name, tags=tags, created_by=created_by)
    await store_results(session, execution, parsed)
    broken = execution.tests_failed + execution.tests_errored
    execution.status = "failed" if broken else "passed"
    execution.reason = f"{broken} test(s) failed or errored" if broken else ""
    execution.finished_at = utcnow()
    execution.duration_ms = sum(r.duration_ms for r in parsed)
    await session.flush()
    return execution


def _parse_upload(data: bytes, filename: str, max_bytes: int | None) -> list[ParsedResult]:
    return parse_junit(data, source=filename, max_bytes=max_bytes)


class CaseResult(BaseModel):
    """One test's outcome in one execution."""

    suite: str
    classname: str
    name: str
    status: Status
    duration_ms: int
    message: str = Field(description="the failure, error or skip message (at most 4 KB)")
    trace: str = Field(description="the stack trace or output, possibly cut; empty when not asked for")
    file: str = Field(description="the test's source file, when the report names it")


class ResultsPage(BaseModel):
    """A page of an execution's results; the counts cover the whole execution, not just this page."""

    execution_id: str
    total: int
    passed: int
    failed: int
    skipped: int
    errored: int
    results: list[CaseResult]
    next_cursor: str | None = Field(description="pass back to get the next page; null on the last")


async def list_results(
    session: AsyncSession,
    execution_id: str,
    *,
    status: Sequence[str] | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    include_trace: bool = True,
    max_trace_chars: int = 4000,
) -> ResultsPage:
    """Results in report order, keyset-paginated on the row id, optionally only some statuses."""
    size = clamp_limit(limit)
    query = select(ResultRow).where(ResultRow.execution_id == execution_id)
    if status:
        bad = sorted(set(status) - set(STATUSES))
        if bad:
            raise InvalidInput(f"unknown status {', '.join(bad)}; one of {', '.join(STATUSES)}")
        query = query.where(ResultRow.status.in_(list(status)))
    kind = f"{CURSOR}:{execution_id}"  # a page of another execution's results is no place to go on from
    if cursor:
        query = query.where(ResultRow.id > decode_int_cursor(cursor, kind))
    if not include_trace:
        query = query.options(defer(ResultRow.trace))
    rows = list(await session.scalars(query.order_by(ResultRow.id).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    counts = await _counts(session, execution_id)
    return ResultsPage(
        execution_id=execution_id,
        total=sum(counts.values()),
        passed=counts["passed"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        errored=counts["errored"],
        results=[_case(row, max_trace_chars if include_trace else None) for row in rows],
        next_cursor=encode_cursor(kind, rows[-1].id) if more else None,
    )


async def _counts(session: AsyncSession, execution_id: str) -> Counter[str]:
    rows = await session.execute(
        select(ResultRow.status, func.count()).where(ResultRow.execution_id == execution_id).group_by(ResultRow.status)
    )
    return Counter({status: int(count) for status, count in rows})


def _case(row: ResultRow, max_trace_chars: int | None) -> CaseResult:
    return CaseResult(
        suite=row.suite,
        classname=row.classname,
        name=row.name,
        status=cast(Status, row.status),  # only parse_junit's statuses are ever stored
        duration_ms=row.duration_ms,
        message=row.message,
        trace="" if max_trace_chars is None else cut(row.trace, max_trace_chars),
        file=row.file,
    )


async def history(
    session: AsyncSession, environment_id: str, *, workflow_name: str | None, last: int
) -> dict[tuple[str, str], list[str]]:
    """(classname, name) -> its statuses over the last ``last`` finished executions, oldest first."""
    query = select(ExecutionRow.id).where(
        ExecutionRow.environment_id == environment_id, ExecutionRow.status.in_(sorted(TERMINAL))
    )
    if workflow_name is not None:
        query = query.where(ExecutionRow.workflow_name == workflow_name)
    ids = list(await session.scalars(query.order_by(ExecutionRow.id.desc()).limit(max(last, 0))))
    if not ids:
        return {}
    position = {execution_id: index for index, execution_id in enumerate(reversed(ids))}
    rows = await session.execute(
        select(ResultRow.execution_id, ResultRow.id, ResultRow.classname, ResultRow.name, ResultRow.status).where(
            ResultRow.execution_id.in_(ids)
        )
    )
    ordered = sorted(rows, key=lambda r: (position[r[0]], r[1]))
    result: dict[tuple[str, str], list[str]] = {}
    for _, _, classname, name, status in ordered:
        result.setdefault((classname, name), []).append(status)
    return result
