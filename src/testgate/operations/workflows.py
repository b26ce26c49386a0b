"""Workflow operations: list, get, definition, schema, create, update, delete, run."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from sqlalchemy import func, select

from testgate.access.principal import Permission
from testgate.operations.context import OpContext
from testgate.operations.models import Deleted
from testgate.operations.registry import Confirmation, operation
from testgate.platform import executions, links, workflows
from testgate.platform import spec as specs
from testgate.store.executions import ExecutionRow
from testgate.store.workflows import WorkflowRow

Name = Field(min_length=1, max_length=63, description="the workflow's metadata.name")


def _scalar(value: Any) -> str | int | float | bool:
    if isinstance(value, str | int | float):  # bool is an int
        return value
    raise ValueError("expected a string, number or boolean")


# A run's config value: one message for anything else (a union's would name each member it tried).
ConfigValue = Annotated[
    str | int | float | bool, PlainValidator(_scalar), WithJsonSchema({"type": ["string", "number", "boolean"]})
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListWorkflowsIn(_In):
    selector: str | None = Field(
        default=None, description="label selector: 'team=qa,tier=smoke'; a bare key means the label is set"
    )
    text: str | None = Field(default=None, description="substring of the name or description")


class LastRun(BaseModel):
    id: str
    number: int
    status: str
    finished_at: datetime | None


class WorkflowSummary(BaseModel):
    name: str
    description: str
    labels: dict[str, str]
    steps: int
    config: list[str] = Field(description="names of the config parameters a run may set")
    executions: int
    last_execution: LastRun | None
    updated_at: datetime


class WorkflowList(BaseModel):
    workflows: list[WorkflowSummary]
    count: int


async def _summaries(ctx: OpContext, rows: list[WorkflowRow]) -> list[WorkflowSummary]:
    newest = (
        select(func.max(ExecutionRow.id))
        .where(
            ExecutionRow.environment_id == ctx.env.id,
            ExecutionRow.workflow_name.in_([r.name for r in rows]),
        )
        .group_by(ExecutionRow.workflow_name)
    )
    found = await ctx.db.scalars(select(ExecutionRow).where(ExecutionRow.id.in_(newest)))
    last = {e.workflow_name: e for e in found}
    return [
        WorkflowSummary(
            name=r.name,
            description=r.description,
            labels=r.labels,
            steps=len(r.spec.get("spec", {}).get("steps", [])),
            config=sorted(r.spec.get("spec", {}).get("config", {})),
            executions=r.execution_count,
            last_execution=LastRun(
                id=last[r.name].id,
                number=last[r.name].number,
                status=last[r.name].status,
                finished_at=last[r.name].finished_at,
            )
            if r.name in last
            else None,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


@operation(
    "workflow.list",
    tool="list_workflows",
    title="List workflows",
    permission=Permission.READ,
    input=ListWorkflowsIn,
    output=WorkflowList,
    read_only=True,
    idempotent=True,
)
async def list_workflows(ctx: OpContext, args: ListWorkflowsIn) -> WorkflowList:
    """List the test workflows of this environment with their labels, step count and latest execution.
    Narrow with a label selector (e.g. 'team=qa') or a text filter. Use get_workflow for one workflow's
    details and run_workflow to start one."""
    rows = await workflows.list_all(ctx.db, ctx.env, selector=args.selector, text=args.text)
    items = await _summaries(ctx, rows)
    return WorkflowList(workflows=items, count=len(items))


class WorkflowRef(_In):
    name: str = Name


class ConfigInfo(BaseModel):
    name: str
    type: str
    default: Any = None
    description: str = ""
    sensitive: bool = False
    enum: list[str] | None = None


class WorkflowDetail(WorkflowSummary):
    config_parameters: list[ConfigInfo]
    step_names: list[str]
    created_at: datetime
    dashboard_url: str


@operation(
    "workflow.get",
    tool="get_workflow",
    title="Get a workflow",
    permission=Permission.READ,
    input=WorkflowRef,
    output=WorkflowDetail,
    read_only=True,
    idempotent=True,
)
async def get_workflow(ctx: OpContext, args: WorkflowRef) -> WorkflowDetail:
    """Get one workflow: description, labels, config parameters (type, default, whether sensitive),
    step names and its latest execution. Use get_workflow_definition for the full YAML."""
    row = await workflows.get(ctx.db, ctx.env, args.name)
    ctx.touch("workflow", row.id, row.name)
    (summary,) = await _summaries(ctx, [row])
    document = specs.validate(row.spec)
    params = [
        ConfigInfo(name=n, **p.model_dump(include={"type", "default", "description", "sensitive", "enum"}))
        for n, p in document.spec.config.items()
    ]
    return WorkflowDetail(
        **summary.model_dump(),
        config_parameters=params,
        step_names=[s.name for s in document.spec.steps],
        created_at=row.created_at,
        dashboard_url=links.console_url(
            ctx.platform.settings.base_url, ctx.organization.slug, ctx.env.slug, "workflow", row.name
        ),
    )


class Definition(BaseModel):
    name: str
    definition: str = Field(description="the workflow's YAML, as last applied")


@operation(
    "workflow.definition",
    tool="get_workflow_definition",
    title="Get a workflow's YAML definition",
    permission=Permission.READ,
    input=WorkflowRef,
    output=Definition,
    read_only=True,
    idempotent=True,
)
async def get_definition(ctx: OpContext, args: WorkflowRef) -> Definition:
    """Return the YAML definition of a workflow exactly as it was last created or updated. Edit it and
    pass it to update_workflow to change the workflow."""
    row = await workflows.get(ctx.db, ctx.env, args.name)
    ctx.touch("workflow", row.id, row.name)
    return Definition(name=row.name, definition=row.definition)


class NoArgs(_In):
    pass


class SchemaOut(BaseModel):
    json_schema: dict[str, Any] = Field(description="JSON Schema (2020-12) of a TestWorkflow document")


@operation(
    "workflow.schema",
    tool="get_workflow_schema",
    title="Get the workflow JSON Schema",
    permission=Permission.READ,
    input=NoArgs,
    output=SchemaOut,
    read_only=True,
    idempotent=True,
)
async def get_schema(ctx: OpContext, args: NoArgs) -> SchemaOut:
    """Return the JSON Schema of a TestWorkflow YAML document (kind, metadata, spec.config, spec.env,
    spec.content, spec.steps, spec.artifacts, spec.results). Read it before writing a workflow."""
    return SchemaOut(json_schema=specs.json_schema())


class DefinitionIn(_In):
    definition: str = Field(min_length=1, description="the whole TestWorkflow YAML document (see get_workflow_schema)")


class Saved(BaseModel):
    name: str
    created: bool
    dashboard_url: str


async def _save(ctx: OpContext, definition: str, mode: str, name: str | None = None) -> Saved:
    saved = await workflows.save(
        ctx.db,
        ctx.env,
        definition,
        max_bytes=ctx.platform.settings.max_spec_bytes,
        mode=mode,
        name=name,
    )
    ctx.touch("workflow", saved.row.id, saved.row.name)
    url = links.console_url(
        ctx.platform.settings.base_url, ctx.organization.slug, ctx.env.slug, "workflow", saved.row.name
    )
    return Saved(name=saved.row.name, created=saved.created, dashboard_url=url)


@operation(
    "workflow.create",
    tool="create_workflow",
    title="Create a workflow",
    permission=Permission.WRITE,
    input=DefinitionIn,
    output=Saved,
)
async def create_workflow(ctx: OpContext, args: DefinitionIn) -> Saved:
    """Create a workflow from a TestWorkflow YAML document. Fails if the name is taken (use
    update_workflow). Validation errors name the field path, e.g. 'spec.steps[1].timeout: ...'."""
    return await _save(ctx, args.definition, "create")


class UpdateIn(DefinitionIn):
    name: str = Name


@operation(
    "workflow.update",
    tool="update_workflow",
    title="Update a workflow",
    permission=Permission.WRITE,
    input=UpdateIn,
    output=Saved,
    idempotent=True,
)
async def update_workflow(ctx: OpContext, args: UpdateIn) -> Saved:
    """Replace an existing workflow's definition with a new YAML document (metadata.name must stay
    the same). Past executions keep the definition they ran with."""
    return await _save(ctx, args.definition, "update", args.name)


@operation(
    "workflow.apply",
    tool="apply_workflow",
    title="Create or update a workflow",
    permission=Permission.WRITE,
    input=DefinitionIn,
    output=Saved,
    idempotent=True,
)
async def apply_workflow(ctx: OpContext, args: DefinitionIn) -> Saved:
    """Create the workflow if its name is new, otherwise replace its definition (like kubectl apply)."""
    return await _save(ctx, args.definition, "apply")


class DeleteWorkflowIn(WorkflowRef):
    delete_executions: bool = Field(
        default=False, description="also delete its executions, logs, artifacts and results"
    )


async def _confirm_delete(ctx: OpContext, args: DeleteWorkflowIn) -> Confirmation:
    row = await workflows.get(ctx.db, ctx.env, args.name)
    count = await ctx.db.scalar(select(ExecutionRow.id).where(ExecutionRow.workflow_id == row.id).limit(1))
    tail = ""
    if args.delete_executions:
        total = row.execution_count
        tail = f" and its executions ({total} run(s), with their logs, artifacts and results)"
    elif count:
        tail = " (its past executions are kept)"
    return Confirmation(f"Delete workflow '{row.name}' from environment '{ctx.env.slug}'{tail}?", subject=row.id)


@operation(
    "workflow.delete",
    tool="delete_workflow",
    title="Delete a workflow",
    permission=Permission.WRITE,
    input=DeleteWorkflowIn,
    output=Deleted,
    destructive=True,
    confirm=_confirm_delete,
)
async def delete_workflow(ctx: OpContext, args: DeleteWorkflowIn) -> Deleted:
    """Delete a workflow (and optionally its executions). Destructive: the user is asked to confirm
    first, and nothing is deleted unless they accept."""
    row = await workflows.get(ctx.db, ctx.env, args.name)
    if row.id != ctx.confirmed:
        return Deleted(deleted=False, message="the workflow changed since it was confirmed; nothing deleted")
    ctx.touch("workflow", row.id, row.name)
    removed = await workflows.delete_workflow(ctx.db, row, with_executions=args.delete_executions)
    extra = f" and {removed} execution(s)" if args.delete_executions else ""
    return Deleted(deleted=True, message=f"deleted workflow '{row.name}'{extra}")


class RunIn(_In):
    name: str = Name
    config: dict[str, ConfigValue] = Field(
        default_factory=dict, description="values for the workflow's config parameters (see get_workflow)"
    )
    tags: dict[str, str] = Field(default_factory=dict, description="tags to put on the execution")


class RunOut(BaseModel):
    id: str
    number: int
    workflow: str
    status: str
    dashboard_url: str


@operation(
    "workflow.run",
    tool="run_workflow",
    title="Run a workflow",
    permission=Permission.RUN,
    input=RunIn,
    output=RunOut,
    redact_arguments=("config",),
)
async def run_workflow(ctx: OpContext, args: RunIn) -> RunOut:
    """Start an execution of a workflow and return at once with its id and number; it runs in the
    background. Pass config values for its parameters. Then call wait_for_executions to wait for the
    result, fetch_execution_logs for output and get_execution_results for per-test results."""
    row = await workflows.get(ctx.db, ctx.env, args.name)
    created = await executions.create(
        ctx.db, ctx.env, row, config=args.config, tags=args.tags, created_by=ctx.principal.name
    )
    execution = created.row
    ctx.touch("workflow", row.id, row.name)
    ctx.touch("execution", execution.id, f"{row.name}#{execution.number}")
    ctx.audit_arguments = {"name": args.name, "config": execution.config, "tags": args.tags}
    executor = ctx.platform.require_executor()

    async def submit() -> None:
        await executor.submit(execution.id, created.secrets)

    ctx.after_commit.append(submit)
    return RunOut(
        id=execution.id,
        number=execution.number,
        workflow=row.name,
        status=execution.status,
        dashboard_url=links.console_url(
            ctx.platform.settings.base_url, ctx.organization.slug, ctx.env.slug, "execution", execution.id
        ),
    )
