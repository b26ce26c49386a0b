"""Results operations: artifacts, per-test results, results upload, metrics, labels, dashboard links."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from testgate.access.principal import Permission
from testgate.errors import InvalidInput, LimitExceeded
from testgate.operations.context import OpContext
from testgate.operations.executions import ExecutionRef
from testgate.operations.models import ExecutionSummary
from testgate.operations.registry import operation
from testgate.platform import analytics, artifacts, executions, links, results, testcases, workflows
from testgate.platform.pagination import MAX_KEY


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecutionIn(_In):
    id: str = ExecutionRef


class ArtifactList(BaseModel):
    execution_id: str
    artifacts: list[artifacts.ArtifactInfo]


@operation(
    "artifact.list",
    tool="list_artifacts",
    title="List an execution's artifacts",
    permission=Permission.READ,
    input=ExecutionIn,
    output=ArtifactList,
    read_only=True,
    idempotent=True,
)
async def list_artifacts(ctx: OpContext, args: ExecutionIn) -> ArtifactList:
    """List the files an execution kept as artifacts (path, size, type, whether text). Read one with
    read_artifact."""
    row = await executions.get(ctx.db, ctx.env, args.id)
    ctx.touch("execution", row.id, f"{row.workflow_name}#{row.number}")
    return ArtifactList(execution_id=row.id, artifacts=await artifacts.list_artifacts(ctx.db, row.id))


class ReadArtifactIn(_In):
    id: str = ExecutionRef
    path: str = Field(min_length=1, max_length=1024, description="the artifact's path as listed")
    start_line: int | None = Field(default=None, ge=1, le=MAX_KEY)
    end_line: int | None = Field(default=None, ge=1, le=MAX_KEY)
    grep: str | None = Field(
        default=None,
        max_length=500,
        description="regular expression, RE2 syntax: no backreferences or lookaround; \\w, \\d, \\b are ASCII",
    )
    context: int = Field(default=0, ge=0, le=20)
    max_matches: int = Field(default=50, ge=1, le=500)


@operation(
    "artifact.read",
    tool="read_artifact",
    title="Read an artifact",
    permission=Permission.READ,
    input=ReadArtifactIn,
    output=artifacts.ArtifactContent,
    read_only=True,
    idempotent=True,
)
async def read_artifact(ctx: OpContext, args: ReadArtifactIn) -> artifacts.ArtifactContent:
    """Read a text artifact, whole or a line range, or grep it with context. Output is bounded (about
    64 KB, 'truncated' says so); binary files are detected and not returned."""
    row = await executions.get(ctx.db, ctx.env, args.id)
    ctx.touch("artifact", row.id, args.path)
    return await artifacts.read_artifact(
        ctx.platform,
        ctx.db,
        row.id,
        args.path,
        start_line=args.start_line,
        end_line=args.end_line,
        grep=args.grep,
        context=args.context,
        max_matches=args.max_matches,
    )


class ResultsIn(_In):
    id: str = ExecutionRef
    status: list[Literal["passed", "failed", "errored", "skipped"]] | None = Field(
        default=None, description="only these outcomes, e.g. ['failed', 'errored']"
    )
    include_trace: bool = Field(default=True, description="include failure traces (each cut to 4000 chars)")
    limit: int = Field(default=100, ge=1, le=500)
    cursor: str | None = None


@operation(
    "execution.results",
    tool="get_execution_results",
    title="Get per-test results",
    permission=Permission.READ,
    input=ResultsIn,
    output=results.ResultsPage,
    read_only=True,
    idempotent=True,
)
async def get_results(ctx: OpContext, args: ResultsIn) -> results.ResultsPage:
    """Per-test results of an execution parsed from JUnit XML: suite, class, name, status, duration,
    failure message and trace. Filter by status (e.g. only failed); page with next_cursor."""
    row = await executions.get(ctx.db, ctx.env, args.id)
    ctx.touch("execution", row.id, f"{row.workflow_name}#{row.number}")
    return await results.list_results(
        ctx.db,
        row.id,
        status=args.status,
        limit=args.limit,
        cursor=args.cursor,
        include_trace=args.include_trace,
    )


class UploadFile(_In):
    name: str = Field(min_length=1, max_length=255, description="file name, e.g. junit.xml")
    content: str = Field(description="the JUnit XML document")


class UploadIn(_In):
    workflow: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        description="name to file the results under (a workflow name, existing or not)",
    )
    files: list[UploadFile] = Field(min_length=1, max_length=100)
    tags: dict[str, str] = Field(default_factory=dict)


@operation(
    "results.upload",
    tool="upload_results",
    title="Upload JUnit results",
    permission=Permission.RUN,
    input=UploadIn,
    output=ExecutionSummary,
)
async def upload_results(ctx: OpContext, args: UploadIn) -> ExecutionSummary:
    """Record test results produced elsewhere (an external CI) as a new finished execution: upload its
    JUnit XML files. The execution passes when no test failed or errored."""
    size = sum(len(f.content.encode()) for f in args.files)
    limit = ctx.platform.settings.max_upload_bytes
    if size > limit:
        raise LimitExceeded(f"the upload is {size} bytes; the limit is {limit}")
    row = await results.upload(
        ctx.db,
        ctx.env,
        name=args.workflow,
        files=[(f.name, f.content.encode()) for f in args.files],
        tags=args.tags,
        created_by=ctx.principal.name,
        max_file_bytes=ctx.platform.settings.runner.max_junit_bytes,
    )
    ctx.touch("execution", row.id, f"{row.workflow_name}#{row.number}")
    tags = (await executions.tags_of(ctx.db, [row.id]))[row.id]
    return ExecutionSummary.of(row, tags)


class MetricsIn(_In):
    name: str = Field(min_length=1, max_length=63, description="workflow name")
    last: int = Field(default=50, ge=2, le=1000, description="how many recent finished executions")


class FlakyTest(BaseModel):
    classname: str
    name: str
    flips: int
    runs: int
    failures: int


class MetricsOut(BaseModel):
    workflow: str
    executions: int = Field(description="finished executions in the window")
    by_status: dict[str, int]
    pass_rate: float | None = Field(description="passed / finished (aborted excluded), 0..1")
    flip_rate: float = Field(description="share of consecutive runs whose outcome changed, 0..1")
    duration_p50_ms: int | None
    duration_p90_ms: int | None
    duration_p99_ms: int | None
    last_status: str | None
    flaky_tests: list[FlakyTest] = Field(description="tests that both passed and failed in the window")


@operation(
    "workflow.metrics",
    tool="get_workflow_metrics",
    title="Get workflow metrics",
    permission=Permission.READ,
    input=MetricsIn,
    output=MetricsOut,
    read_only=True,
    idempotent=True,
)
async def get_metrics(ctx: OpContext, args: MetricsIn) -> MetricsOut:
    """Health of a workflow over its last N finished executions (default 50): pass rate, flip rate
    (flakiness of the whole run), duration p50/p90/p99 and the flaky tests inside it."""
    row = await workflows.get(ctx.db, ctx.env, args.name)
    ctx.touch("workflow", row.id, row.name)
    metrics = await analytics.workflow_metrics(ctx.db, ctx.env, row.name, args.last)
    history = await results.history(ctx.db, ctx.env.id, workflow_name=row.name, last=args.last)
    flaky = [FlakyTest.model_validate(f) for f in analytics.flaky_tests(history)[:50]]
    return MetricsOut(
        workflow=row.name,
        executions=metrics.executions,
        by_status=metrics.by_status,
        pass_rate=metrics.pass_rate,
        flip_rate=metrics.flip_rate,
        duration_p50_ms=metrics.p50_ms,
        duration_p90_ms=metrics.p90_ms,
        duration_p99_ms=metrics.p99_ms,
        last_status=metrics.last_status,
        flaky_tests=flaky,
    )


class NoArgs(_In):
    pass


class LabelsOut(BaseModel):
    labels: dict[str, list[str]] = Field(description="label key -> the values in use")


@operation(
    "label.list",
    tool="list_labels",
    title="List workflow labels",
    permission=Permission.READ,
    input=NoArgs,
    output=LabelsOut,
    read_only=True,
    idempotent=True,
)
async def list_labels(ctx: OpContext, args: NoArgs) -> LabelsOut:
    """List every label key used on this environment's workflows with its values, to build selectors
    for list_workflows."""
    return LabelsOut(labels=workflows.labels_of(await workflows.list_all(ctx.db, ctx.env)))


class DashboardIn(_In):
    kind: links.LinkKind = Field(
        description="workflows, workflow, executions, execution, test_cases, test_case or audit"
    )
    ref: str | None = Field(default=None, description="workflow name, execution id or test case id")


class DashboardOut(BaseModel):
    url: str


@operation(
    "dashboard.url",
    tool="build_dashboard_url",
    title="Build a console link",
    permission=Permission.READ,
    input=DashboardIn,
    output=DashboardOut,
    read_only=True,
    idempotent=True,
)
async def build_dashboard_url(ctx: OpContext, args: DashboardIn) -> DashboardOut:
    """Build a link to the web console for a workflow, an execution, a test case or a list, to hand
    to a person. The workflow, execution or test case must exist here (an execution may be named
    'workflow-name#number'; the link uses its id)."""
    ref = args.ref
    if ref and args.kind in ("workflow", "execution", "test_case"):
        ref = await _existing(ctx, args.kind, ref)
    try:
        url = links.console_url(ctx.platform.settings.base_url, ctx.organization.slug, ctx.env.slug, args.kind, ref)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return DashboardOut(url=url)


async def _existing(ctx: OpContext, kind: links.LinkKind, ref: str) -> str:
    """What a link to ``kind`` ``ref`` points at, or NotFound: a link to nothing sends a person to an error."""
    if kind == "workflow":
        return (await workflows.get(ctx.db, ctx.env, ref)).name
    if kind == "execution":
        return (await executions.get(ctx.db, ctx.env, ref)).id
    return (await testcases.get(ctx.db, ctx.env, ref)).id
