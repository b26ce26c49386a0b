"""Workflows: create, update, read, list (with label selectors) and delete, per environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.errors import Conflict, InvalidInput, NotFound
from testgate.platform import spec as specs
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow
from testgate.store.tenancy import Environment
from testgate.store.workflows import WorkflowRow


def parse_selector(selector: str | None, *, max_value: int = specs.MAX_LABEL_VALUE) -> dict[str, str | None]:
    """``team=qa,smoke`` -> {"team": "qa", "smoke": None} (a bare key means "has the label").

    Operators testgate does not support (``team!=qa``, ``team==qa``, ``a in (b)``) are refused rather than
    read as a selector that matches nothing. Keys are otherwise taken as they are: test cases stored before
    labels were checked may have keys no new label can have, and must stay selectable. ``max_value`` is the
    longest value the selected field holds (63 for labels, 255 for execution tags).
    """
    result: dict[str, str | None] = {}
    for part in (selector or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = (piece.strip() for piece in part.partition("="))
        if not key or _OPERATOR_CHARS & set(key) or value.startswith(("=", "!")) or len(value) > max_value:
            raise InvalidInput(
                f"label selector {selector!r}: {part!r} is not 'key' or 'key=value' (values at most {max_value} "
                "characters; '!=', '==' and set operators are not supported)"
            )
        result[key] = value if sep else None
    return result


_OPERATOR_CHARS = frozenset("!=<>()")


def matches(labels: dict[str, Any], selector: dict[str, str | None]) -> bool:
    return all(k in labels and (v is None or str(labels[k]) == v) for k, v in selector.items())


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
    wanted = parse_selector(selector)
    needle = (text or "").lower()
    return [
        r
        for r in rows
        if matches(r.labels, wanted) and (not needle or needle in r.name or needle in r.description.lower())
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
        row = WorkflowRow(environment_id=env.id, name=workflow.metadata.name, spec={}, definition="")
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
    labels: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row.labels.items():
            labels.setdefault(key, set()).add(str(value))
    return {k: sorted(v) for k, v in sorted(labels.items())}
