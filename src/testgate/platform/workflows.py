"""Workflows: create, update, read, list (with label selectors) and delete, per environment."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.errors import Conflict, InvalidInput, NotFound
from testgate.platform import executions, labels
from testgate.platform import spec as specs
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow
from testgate.store.tenancy import Environment
from testgate.store.workflows import WorkflowRow


async def get(session: AsyncSession, env: Environment, name: str) -> WorkflowRow:
    row = await session.scalar(
        select(WorkflowRow).where(WorkflowRow.environment_id == env.id, WorkflowRow.name == name)
    )
    if row is None:
        raise NotFound(f"workflow {name!r} not found in environment {env.slug!r}")
    return row


async def list_all(
    session: AsyncSession, env: Environment, *, selector: str | None = None, text: str | None = None
) -> list[WorkflowRow]:
    rows = await session.scalars(
        select(WorkflowRow).where(WorkflowRow.environment_id == env.id).order_by(WorkflowRow.name)
    )
    wanted = labels.parse_selector(selector)
    needle = (text or "").lower()
    return [
        r
        for r in rows
        if labels.matches(r.labels, wanted) and (not needle or needle in r.name or needle in r.description.lower())
    ]


@dataclass(frozen=True)
class Saved:
    row: WorkflowRow
    created: bool


def parse_definition(definition: str, max_bytes: int) -> specs.Workflow:
    return specs.parse(definition, max_bytes=max_bytes)


def _apply(row: WorkflowRow, workflow: specs.Workflow, definition: str) -> None:
    row.description = workflow.metadata.description
    row.labels = dict(workflow.metadata.labels)
    row.definition = definition
    row.spec = specs.to_document(workflow)
    row.updated_at = utcnow()


async def save(
    session: AsyncSession,
    env: Environment,
    definition: str,
    *,
    max_bytes: int,
    mode: str = "create",
    name: str | None = None,
) -> Saved:
    """Create (mode ``create``), replace (``update``) or upsert (``apply``) a workflow from YAML."""
    workflow = parse_definition(definition, max_bytes)
    if name is not None and workflow.metadata.name != name:
        raise InvalidInput(f"metadata.name is {workflow.metadata.name!r} but the workflow being updated is {name!r}")
    existing = await session.scalar(
        select(WorkflowRow).where(WorkflowRow.environment_id == env.id, WorkflowRow.name == workflow.metadata.name)
    )
    if existing is not None and mode == "create":
        raise Conflict(f"workflow {workflow.metadata.name!r} already exists; use update_workflow to change it")
    if existing is None and mode == "update":
        raise NotFound(f"workflow {workflow.metadata.name!r} not found in environment {env.slug!r}")
    if existing is None:
        name = workflow.metadata.name
        # A workflow of this name may have been deleted, its executions kept: number on from them.
        count = await executions.numbered_so_far(session, env, name)
        row = WorkflowRow(environment_id=env.id, name=name, spec={}, definition="", execution_count=count)
        _apply(row, workflow, definition)
        session.add(row)
        await session.flush()
        return Saved(row, True)
    _apply(existing, workflow, definition)
    await session.flush()
    return Saved(existing, False)


async def delete_workflow(session: AsyncSession, row: WorkflowRow, *, with_executions: bool) -> int:
    """Delete a workflow; its executions go too when asked (otherwise they stay, unlinked)."""
    removed = 0
    if with_executions:
        result = await session.execute(delete(ExecutionRow).where(ExecutionRow.workflow_id == row.id))
        removed = int(result.rowcount or 0)  # type: ignore[attr-defined]
    await session.delete(row)
    await session.flush()
    return removed


def labels_of(rows: list[WorkflowRow]) -> dict[str, list[str]]:
    """Every label key with its distinct values, sorted."""
    found: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row.labels.items():
            found.setdefault(key, set()).add(str(value))
    return {k: sorted(v) for k, v in sorted(found.items())}
