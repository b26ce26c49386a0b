"""Execution operations: list, get, logs, wait, abort, tags."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from testgate.access.principal import Permission
from testgate.errors import Conflict, InvalidInput
from testgate.operations.context import OpContext
from testgate.operations.models import ExecutionDetail, ExecutionSummary, StepInfo, UtcTime
from testgate.operations.registry import operation
from testgate.platform import executions, links, logs, workflows
from testgate.platform.pagination import MAX_KEY
from testgate.runner import state
from testgate.store.executions import ExecutionRow

PROGRESS_EVERY = 5.0  # seconds between progress notifications while no awaited execution finishes
ExecutionRef = Field(
    min_length=1, max_length=100, description="an execution id, or 'workflow-name#number' (e.g. 'smoke#12')"
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListExecutionsIn(_In):
    workflow: str | None = Field(default=None, description="only this workflow's executions")
    status: list[str] | None = Field(
        default=None, description="any of queued, running, passed, failed, aborted, timed_out"
    )
    tags: str | None = Field(default=None, description="tag selector: 'branch=main,nightly'")
    since: UtcTime | None = Field(default=None, description="created at or after (ISO 8601; UTC unless an offset)")
    text: str | None = Field(default=None, description="substring of the workflow name or failure reason")
    limit: int = Field(default=20, ge=1, le=500, description="page size (newest first)")
    cursor: str | None = Field(default=None, description="next_cursor from the previous page")


class ExecutionList(BaseModel):
    executions: list[ExecutionSummary]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last")


@operation(
    "execution.list",
    tool="list_executions",
    title="List executions",
    permission=Permission.READ,
    input=ListExecutionsIn,
    output=ExecutionList,
    read_only=True,
    idempotent=True,
)
async def list_executions(ctx: OpContext, args: ListExecutionsIn) -> ExecutionList:
    """List executions newest first, filtered by workflow, status, tags, time or text, with test
    counts. Pages hold 'limit' items (default 20); pass next_cursor to continue. A workflow name that
    neither exists nor has executions is an error (check it with list_workflows)."""
    page = await executions.list_page(
        ctx.db,
        ctx.env,
        workflow=args.workflow,
        status=args.status,
        tags=args.tags,
        since=args.since,
        text=args.text,
        limit=args.limit,
        cursor=args.cursor,
    )
    if args.workflow and not page.rows and not await executions.any_under(ctx.db, ctx.env, args.workflow):
        # No execution was ever filed under this name: say whether the workflow exists, so a typo is not
        # read as "it never ran". A deleted workflow's executions, and uploads', stay listed under its name.
        await workflows.get(ctx.db, ctx.env, args.workflow)
    tags = await executions.tags_of(ctx.db, [r.id for r in page.rows])
    return ExecutionList(
        executions=[ExecutionSummary.of(r, tags[r.id]) for r in page.rows], next_cursor=page.next_cursor
    )


class ExecutionIn(_In):
    id: str = ExecutionRef


async def detail(ctx: OpContext, row: ExecutionRow) -> ExecutionDetail:
    session = ctx.db
    tags = (await executions.tags_of(session, [row.id]))[row.id]
    steps = await executions.steps_of(session, row.id)
    base = ExecutionSummary.of(row, tags)
    return ExecutionDetail(
        **base.model_dump(),
        config=row.config,
        steps=[StepInfo.of(s) for s in steps],
        log_lines=row.log_lines,
        log_truncated=row.log_truncated,
        dashboard_url=links.console_url(
            ctx.platform.settings.base_url, ctx.organization.slug, ctx.env.slug, "execution", row.id
        ),
        runner=row.runner_id,
        attempts=row.attempts,
    )


@operation(
    "execution.get",
    tool="get_execution",
    title="Get an execution",
    permission=Permission.READ,
    input=ExecutionIn,
    output=ExecutionDetail,
    read_only=True,
    idempotent=True,
)
async def get_execution(ctx: OpContext, args: ExecutionIn) -> ExecutionDetail:
    """Get one execution: status and reason, each step's status, exit code and duration, config
    values (sensitive ones masked), tags, test counts and a link to the console."""
    row = await executions.get(ctx.db, ctx.env, args.id)
    ctx.touch("execution", row.id, f"{row.workflow_name}#{row.number}")
    return await detail(ctx, row)


class LogsIn(_In):
    id: str = ExecutionRef
    tail: int = Field(default=100, ge=1, le=5000, description="last N lines (default 100)")
    start: int | None = Field(
        default=None, ge=1, le=MAX_KEY, description="first line number (inclusive); overrides tail"
    )
    end: int | None = Field(default=None, ge=1, le=MAX_KEY, description="last line number (inclusive)")
    step: int | None = Field(
        default=None,
        ge=-1,
        le=MAX_KEY,
        description="only this step's lines (0-based index); -1: the runner's own lines (step: -1 in the output)",
    )
    grep: str | None = Field(
        default=None,
        max_length=500,
        description=(
            "regular expression to search for, RE2 syntax: no backreferences or lookaround; \\w, \\d and \\b "
            "match ASCII only (\\pL: any letter)"
        ),
    )
    context: int = Field(default=0, ge=0, le=20, description="lines of context around each grep match")
    max_matches: int = Field(default=50, ge=1, le=500)


@operation(
    "execution.logs",
    tool="fetch_execution_logs",
    title="Fetch execution logs",
    permission=Permission.READ,
    input=LogsIn,
    output=logs.LogPage,
    read_only=True,
    idempotent=True,
)
async def fetch_logs(ctx: OpContext, args: LogsIn) -> logs.LogPage:
    """Fetch an execution's log lines (numbered, with step index and time). Defaults to the last 100
    lines; choose a line range, one step, or grep with context to find failures in long logs. Output is
    bounded (about 64 KB); 'truncated' says when it was cut."""
    if args.start is not None and args.end is not None and args.end < args.start:
        raise InvalidInput("end must not be before start")
    row = await executions.get(ctx.db, ctx.env, args.id)
    ctx.touch("execution", row.id, f"{row.workflow_name}#{row.number}")
    return await logs.read_logs(
        ctx.db,
        row.id,
        tail=args.tail,
        start=args.start,
        end=args.end,
        step=args.step,
        grep=args.grep,
        context=args.context,
        max_matches=args.max_matches,
    )


class WaitIn(_In):
    ids: list[str] = Field(
        min_length=1, max_length=50, description="execution ids or 'workflow#number' (one named twice counts once)"
    )
    timeout: float = Field(default=60, gt=0, le=900, description="seconds to wait at most (default 60)")


class WaitOut(BaseModel):
    executions: list[ExecutionSummary]
    finished: bool = Field(description="true when every execution reached a final status")
    timed_out: bool
    waited_seconds: float


async def _load(ctx: OpContext, refs: list[str]) -> list[ExecutionRow]:
    async with ctx.platform.db.session() as session:
        return [await executions.get(session, ctx.env, ref) for ref in refs]


@operation(
    "execution.wait",
    tool="wait_for_executions",
    title="Wait for executions to finish",
    permission=Permission.READ,
    input=WaitIn,
    output=WaitOut,
    read_only=True,
    idempotent=True,
    long_running=True,
)
async def wait_for_executions(ctx: OpContext, args: WaitIn) -> WaitOut:
    """Wait until all the given executions finish, or until the timeout (default 60 s, at most 900),
    sending progress notifications meanwhile: when one finishes, and every few seconds while none does
    (progress is the number finished plus the share of the timeout used so far, so it always rises;
    total is the number of executions). Returns their statuses and test counts; if timed_out is true,
    call again to keep waiting."""
    started = time.monotonic()
    rows = await _load(ctx, args.ids)
    ids = list(dict.fromkeys(r.id for r in rows))  # one execution named twice (id and name#number) counts once
    rows = [next(r for r in rows if r.id == i) for i in ids]
    for row in rows:
        ctx.touch("execution", row.id, f"{row.workflow_name}#{row.number}")
    reported, reported_at = -1, 0.0
    while True:
        seen = ctx.platform.events.snapshot(ids)
        rows = await _load(ctx, ids)
        done = sum(1 for r in rows if r.status in executions.TERMINAL)
        now = time.monotonic()
        if done != reported or now - reported_at >= PROGRESS_EVERY:
            # MCP progress MUST increase with each notification: within a count, the time waited moves it on.
            waited = 0.0 if done == len(rows) else min((now - started) / args.timeout, 0.999)
            await ctx.report(done + waited, len(rows), f"{done} of {len(rows)} finished")
            reported, reported_at = done, now
        remaining = args.timeout - (time.monotonic() - started)
        if done == len(rows) or remaining <= 0:
            break
        # Woken by the executor's notifications; the short cap also catches executions run by
        # another process on the same store.
        await ctx.platform.events.wait_any(seen, min(remaining, 2.0))
    async with ctx.platform.db.session() as session:
        tags = await executions.tags_of(session, ids)
    return WaitOut(
        executions=[ExecutionSummary.of(r, tags[r.id]) for r in rows],
        finished=done == len(rows),
        timed_out=done < len(rows),
        waited_seconds=round(time.monotonic() - started, 3),
    )


class AbortOut(BaseModel):
    id: str
    status: str
    message: str


@operation(
    "execution.abort",
    tool="abort_execution",
    title="Abort an execution",
    permission=Permission.RUN,
    input=ExecutionIn,
    output=AbortOut,
    long_running=True,
)
async def abort_execution(ctx: OpContext, args: ExecutionIn) -> AbortOut:
    """Abort a queued or running execution: its processes (and their children) are killed and it ends
    as 'aborted'. Fails if it already finished."""
    (row,) = await _load(ctx, [args.id])
    ctx.touch("execution", row.id, f"{row.workflow_name}#{row.number}")
    executions.ensure_abortable(row)
    reason = f"aborted by {ctx.principal.name}"
    executor = ctx.platform.executor
    stopped = await executor.abort(row.id) if executor is not None else False
    if not stopped:
        # Not held by this process: abort it in the store if queued, else flag it for the process
        # (a worker, or another CLI) whose heartbeat will see the request and kill the steps.
        stopped = await state.abort_by_request(ctx.platform, row.id, reason)
    (row,) = await _load(ctx, [row.id])
    if not stopped and row.status not in executions.TERMINAL:
        raise Conflict(f"execution {row.workflow_name}#{row.number} could not be aborted")
    message = f"{row.workflow_name}#{row.number} is {row.status}"
    if row.status not in executions.TERMINAL:
        message = f"abort requested: {row.workflow_name}#{row.number} stops at its runner's next heartbeat"
    return AbortOut(id=row.id, status=row.status, message=message)


class TagsIn(_In):
    id: str = ExecutionRef
    tags: dict[str, str | None] = Field(description="tags to set; a null value removes that tag")
    replace: bool = Field(default=False, description="replace all tags instead of merging")


class TagsOut(BaseModel):
    id: str
    tags: dict[str, str]


@operation(
    "execution.tags",
    tool="update_execution_tags",
    title="Update execution tags",
    permission=Permission.RUN,
    input=TagsIn,
    output=TagsOut,
    idempotent=True,
)
async def update_tags(ctx: OpContext, args: TagsIn) -> TagsOut:
    """Add, change or remove tags on an execution (merge by default; a null value removes a tag).
    Tags can then be used as a filter in list_executions."""
    row = await executions.get(ctx.db, ctx.env, args.id)
    ctx.touch("execution", row.id, f"{row.workflow_name}#{row.number}")
    tags = await executions.set_tags(ctx.db, row, args.tags, replace=args.replace)
    return TagsOut(id=row.id, tags=tags)
