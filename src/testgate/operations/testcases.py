"""Test case operations: list, get, create, update, delete, bulk delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from testgate.access.principal import Permission
from testgate.operations.context import OpContext
from testgate.operations.models import Deleted
from testgate.operations.registry import Confirmation, operation
from testgate.platform import testcases
from testgate.platform.labels import check_labels
from testgate.store.workflows import CaseRow

Priority = Literal["blocker", "critical", "normal", "minor", "trivial"]
Labels = Annotated[dict[str, str], AfterValidator(check_labels)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(min_length=1, max_length=4000)
    expected: str = Field(default="", max_length=4000)


def _named(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("a test case needs a name that is not only spaces")
    return value.strip() if value is not None else None


class CaseFields(_In):
    description: str | None = Field(default=None, max_length=20000)
    precondition: str | None = Field(default=None, max_length=20000)
    expected_result: str | None = Field(default=None, max_length=20000)
    steps: list[CaseStep] | None = Field(default=None, max_length=200)
    labels: Labels | None = Field(default=None, description="key -> value, like a workflow's labels (at most 50)")
    priority: Priority | None = None
    automated_test: str | None = Field(
        default=None, max_length=600, description="the automated test it maps to: 'classname.name'; '' for none"
    )
    workflow_name: str | None = Field(default=None, max_length=63, description="workflow that runs it; '' for none")


class Case(BaseModel):
    id: str
    name: str
    description: str
    precondition: str
    expected_result: str
    steps: list[CaseStep]
    labels: dict[str, str]
    priority: str
    automated_test: str | None
    workflow_name: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: CaseRow) -> Case:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            precondition=row.precondition,
            expected_result=row.expected_result,
            steps=[CaseStep.model_validate(s) for s in row.steps],
            labels=row.labels,
            priority=row.priority,
            automated_test=row.automated_test,
            workflow_name=row.workflow_name,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class ListCasesIn(_In):
    text: str | None = Field(default=None, description="substring of the name or description")
    selector: str | None = Field(default=None, description="label selector: 'area=checkout'")
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = None


class CaseList(BaseModel):
    test_cases: list[Case]
    next_cursor: str | None


@operation(
    "testcase.list",
    tool="list_test_cases",
    title="List test cases",
    permission=Permission.READ,
    input=ListCasesIn,
    output=CaseList,
    read_only=True,
    idempotent=True,
)
async def list_cases(ctx: OpContext, args: ListCasesIn) -> CaseList:
    """List documented test cases, filtered by text or labels; page with next_cursor."""
    rows, cursor = await testcases.list_page(
        ctx.db, ctx.env, text=args.text, selector=args.selector, limit=args.limit, cursor=args.cursor
    )
    return CaseList(test_cases=[Case.of(r) for r in rows], next_cursor=cursor)


class CaseRef(_In):
    id: str = Field(min_length=1, max_length=26, description="the test case id")


@operation(
    "testcase.get",
    tool="get_test_case",
    title="Get a test case",
    permission=Permission.READ,
    input=CaseRef,
    output=Case,
    read_only=True,
    idempotent=True,
)
async def get_case(ctx: OpContext, args: CaseRef) -> Case:
    """Get one test case with its steps, expected result and the automated test it maps to."""
    row = await testcases.get(ctx.db, ctx.env, args.id)
    ctx.touch("test_case", row.id, row.name)
    return Case.of(row)


class CreateCaseIn(CaseFields):
    name: Annotated[str, AfterValidator(_named)] = Field(min_length=1, max_length=300)


def _values(args: CaseFields) -> dict[str, object]:
    """The fields given: null is the same as left out (agents in strict-schema modes send every optional
    field, as null), and an empty reference is none (that is how one is cleared)."""
    values = args.model_dump(exclude_unset=True, exclude_none=True)
    for reference in ("automated_test", "workflow_name"):
        if reference in values:
            values[reference] = str(values[reference]).strip() or None
    if args.steps is not None:
        values["steps"] = [s.model_dump() for s in args.steps]
    return values


@operation(
    "testcase.create",
    tool="create_test_case",
    title="Create a test case",
    permission=Permission.WRITE,
    input=CreateCaseIn,
    output=Case,
)
async def create_case(ctx: OpContext, args: CreateCaseIn) -> Case:
    """Create a test case (name unique in the environment) with description, steps, expected result,
    labels, priority and optionally the automated test that implements it."""
    row = await testcases.create(ctx.db, ctx.env, _values(args))
    ctx.touch("test_case", row.id, row.name)
    return Case.of(row)


class UpdateCaseIn(CaseFields):
    id: str = Field(min_length=1, max_length=26)
    name: Annotated[str | None, AfterValidator(_named)] = Field(default=None, min_length=1, max_length=300)


@operation(
    "testcase.update",
    tool="update_test_case",
    title="Update a test case",
    permission=Permission.WRITE,
    input=UpdateCaseIn,
    output=Case,
    idempotent=True,
)
async def update_case(ctx: OpContext, args: UpdateCaseIn) -> Case:
    """Change fields of a test case: fields left out (or null) stay as they are; an empty string, list or
    map clears one ('' removes the automated test or workflow it maps to)."""
    row = await testcases.get(ctx.db, ctx.env, args.id)
    values = _values(args)
    values.pop("id", None)
    await testcases.update(ctx.db, row, ctx.env, values)
    ctx.touch("test_case", row.id, row.name)
    return Case.of(row)


async def _confirm_one(ctx: OpContext, args: CaseRef) -> Confirmation:
    row = await testcases.get(ctx.db, ctx.env, args.id)
    return Confirmation(f"Delete test case '{row.name}' ({row.id}) from '{ctx.env.slug}'?", subject=[row.id])


@operation(
    "testcase.delete",
    tool="delete_test_case",
    title="Delete a test case",
    permission=Permission.WRITE,
    input=CaseRef,
    output=Deleted,
    destructive=True,
    confirm=_confirm_one,
)
async def delete_case(ctx: OpContext, args: CaseRef) -> Deleted:
    """Delete one test case. Destructive: the user is asked to confirm first."""
    return await _delete_confirmed(ctx)


class BulkDeleteIn(_In):
    ids: list[str] = Field(min_length=1, max_length=500, description="test case ids")


async def _confirm_many(ctx: OpContext, args: BulkDeleteIn) -> Confirmation:
    rows = await testcases.get_many(ctx.db, ctx.env, sorted(set(args.ids)))
    shown = ", ".join(f"'{r.name}'" for r in rows[:20])
    more = f" and {len(rows) - 20} more" if len(rows) > 20 else ""
    return Confirmation(
        f"Delete {len(rows)} test case(s) from '{ctx.env.slug}': {shown}{more}?", subject=[r.id for r in rows]
    )


@operation(
    "testcase.bulk_delete",
    tool="bulk_delete_test_cases",
    title="Delete several test cases",
    permission=Permission.WRITE,
    input=BulkDeleteIn,
    output=Deleted,
    destructive=True,
    confirm=_confirm_many,
)
async def bulk_delete(ctx: OpContext, args: BulkDeleteIn) -> Deleted:
    """Delete several test cases at once (all must exist). Destructive: the user confirms the exact
    list first."""
    return await _delete_confirmed(ctx)


async def _delete_confirmed(ctx: OpContext) -> Deleted:
    ids: list[str] = list(ctx.confirmed or [])
    rows = await testcases.get_many(ctx.db, ctx.env, ids)
    for row in rows:
        ctx.touch("test_case", row.id, row.name)
    count = await testcases.delete_many(ctx.db, rows)
    return Deleted(deleted=True, message=f"deleted {count} test case(s)")
