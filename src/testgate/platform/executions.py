"""Executions: created from a workflow with config values, listed by keyset, tagged, waited on.

Status moves queued -> running -> passed | failed | aborted | timed_out. Sensitive config values are
never stored: the execution keeps ``***`` in their place and the executor receives them in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from testgate.errors import Conflict, FieldError, InvalidInput, NotFound
from testgate.platform import labels
from testgate.platform import spec as specs
from testgate.platform.pagination import MAX_KEY, clamp_limit, decode_cursor, encode_cursor
from testgate.store import locks
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow, ExecutionTagRow, StepRow
from testgate.store.tenancy import Environment
from testgate.store.workflows import WorkflowRow

CURSOR = "executions"  # the list a cursor belongs to (``pagination.encode_cursor``)

STATUSES = ("queued", "running", "passed", "failed", "aborted", "timed_out")
TERMINAL = frozenset({"passed", "failed", "aborted", "timed_out"})
MASK = "***"
MAX_TAG_VALUE = 255


def resolve_config(spec: specs.Spec, given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Check run-time config values against the spec; return (stored values, sensitive values)."""
    unknown = sorted(set(given) - set(spec.config))
    if unknown:
        raise InvalidInput(
            f"unknown config parameter(s): {', '.join(unknown)}; declared: {', '.join(spec.config) or 'none'}"
        )
    stored: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    problems: list[FieldError] = []
    for name, param in spec.config.items():
        raw = given.get(name, param.default)
        if raw is None:
            problems.append(FieldError(f"config.{name}", "required (no default)"))
            continue
        try:
            value = param.coerce(raw)
        except ValueError as exc:
            problems.append(FieldError(f"config.{name}", str(exc)))
            continue
        if param.sensitive:
            secrets[name] = specs.format_value(value)
            stored[name] = MASK
        else:
            stored[name] = value
    if problems:
        raise InvalidInput("invalid config", errors=problems)
    return stored, secrets


def validate_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """``tags`` if every key and value is valid; ``InvalidInput`` naming each one that is not."""
    problems: list[FieldError] = []
    for key, value in tags.items():
        if not labels.LABEL_KEY.match(key):
            problems.append(FieldError(f"tags.{key}", "not a valid key (letters, digits, '._/-', at most 63)"))
        elif not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            problems.append(
                FieldError(f"tags.{key}", f"the value must be a string of at most {MAX_TAG_VALUE} characters")
            )
    if len(tags) > 50:
        problems.append(FieldError("tags", "at most 50 tags per execution"))
    if problems:
        raise InvalidInput("invalid tags", errors=problems)
    return dict(tags)


@dataclass(frozen=True)
class Created:
    row: ExecutionRow
    secrets: dict[str, str]


async def create(
    session: AsyncSession,
    env: Environment,
    workflow: WorkflowRow,
    *,
    config: Mapping[str, Any],
    tags: Mapping[str, str],
    created_by: str,
) -> Created:
    """Create a queued execution of ``workflow`` (numbered per workflow) with its steps."""
    document = specs.validate(workflow.spec)
    stored, secrets = resolve_config(document.spec, config)
    tags = validate_tags(tags)
    number = await next_number(session, env, workflow)
    row = ExecutionRow(
        environment_id=env.id,
        workflow_id=workflow.id,
        workflow_name=workflow.name,
        number=number,
        status="queued",
        config=stored,
        spec=workflow.spec,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    for index, step in enumerate(document.spec.steps):
        session.add(StepRow(execution_id=row.id, index=index, name=step.name, condition=step.condition))
    for key, value in tags.items():
        session.add(ExecutionTagRow(execution_id=row.id, key=key, value=value))
    await session.flush()
    return Created(row, secrets)


async def next_number(session: AsyncSession, env: Environment, workflow: WorkflowRow) -> int:
    """The number of ``workflow``'s next run: one more than any execution under its name before it, those
    of a deleted workflow of that name included, so ``name#number`` names one execution.

    A workflow counts its executions (``execution_count``, set from those before it when it is created:
    ``numbered_so_far``), so a run reads no other row.
    """
    await _hold_numbering(session, env, workflow.name)
    return await _count_on(session, workflow)


async def numbered_so_far(session: AsyncSession, env: Environment, name: str) -> int:
    """The highest number of an execution under ``name`` (0 without one); no other execution is numbered
    under ``name`` until the transaction ends."""
    await _hold_numbering(session, env, name)
    return await _last_number(session, env, name)


async def _count_on(session: AsyncSession, workflow: WorkflowRow) -> int:
    number = await session.scalar(
        update(WorkflowRow)
        .where(WorkflowRow.id == workflow.id)
        .values(execution_count=WorkflowRow.execution_count + 1)
        .returning(WorkflowRow.execution_count)
    )
    set_committed_value(workflow, "execution_count", number)
    return int(number or 1)


async def _last_number(session: AsyncSession, env: Environment, name: str) -> int:
    last = await session.scalar(
        select(func.max(ExecutionRow.number)).where(
            ExecutionRow.environment_id == env.id, ExecutionRow.workflow_name == name
        )
    )
    return int(last or 0)


async def _hold_numbering(session: AsyncSession, env: Environment, name: str) -> None:
    """Runs, uploads and the creation of a workflow under one name take turns (``store.locks``)."""
    await locks.hold(session, locks.EXECUTION_NUMBERS, f"{env.id}/{name}")


async def create_external(
    session: AsyncSession, env: Environment, *, name: str, tags: Mapping[str, str], created_by: str
) -> ExecutionRow:
    """An execution that ran elsewhere (results uploaded from an external CI)."""
    tags = validate_tags(tags)
    # Taken before the workflow is looked up: one being created under this name is seen once it is committed.
    await _hold_numbering(session, env, name)
    workflow = await session.scalar(
        select(WorkflowRow).where(WorkflowRow.environment_id == env.id, WorkflowRow.name == name)
    )
    number = await _count_on(session, workflow) if workflow else await _last_number(session, env, name) + 1
    now = utcnow()
    row = ExecutionRow(
        environment_id=env.id,
        workflow_id=workflow.id if workflow else None,
        workflow_name=name,
        number=number,
        status="running",
        source="upload",
        created_at=now,
        started_at=now,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    for key, value in tags.items():
        session.add(ExecutionTagRow(execution_id=row.id, key=key, value=value))
    return row


def _scoped(env: Environment) -> Select[ExecutionRow]:
    return select(ExecutionRow).where(ExecutionRow.environment_id == env.id)


async def get(session: AsyncSession, env: Environment, ref: str) -> ExecutionRow:
    """By id, or by ``workflow-name#number``."""
    query = _scoped(env)
    name, sep, number = ref.rpartition("#")
    if sep and number.isdigit() and int(number) <= MAX_KEY:  # a larger number names nothing
        # Before numbering went on across a deleted workflow, a name's numbers could repeat: the newest wins.
        query = query.where(ExecutionRow.workflow_name == name, ExecutionRow.number == int(number))
        query = query.order_by(ExecutionRow.id.desc()).limit(1)
    else:
        query = query.where(ExecutionRow.id == ref)
    row = await session.scalar(query)
    if row is None:
        raise NotFound(f"execution {ref!r} not found in environment {env.slug!r}")
    return row


async def steps_of(session: AsyncSession, execution_id: str) -> list[StepRow]:
    rows = await session.scalars(select(StepRow).where(StepRow.execution_id == execution_id).order_by(StepRow.index))
    return list(rows)


async def tags_of(session: AsyncSession, execution_ids: list[str]) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {i: {} for i in execution_ids}
    if not execution_ids:
        return result
    rows = await session.execute(
        select(ExecutionTagRow.execution_id, ExecutionTagRow.key, ExecutionTagRow.value).where(
            ExecutionTagRow.execution_id.in_(execution_ids)
        )
    )
    for execution_id, key, value in rows:
        result[execution_id][key] = value
    return result


@dataclass(frozen=True)
class Page:
    rows: list[ExecutionRow]
    next_cursor: str | None


async def list_page(
    session: AsyncSession,
    env: Environment,
    *,
    workflow: str | None = None,
    status: list[str] | None = None,
    tags: str | None = None,
    since: datetime | None = None,
    text: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page:
    """Newest first; ``cursor`` continues after the last row of the previous page (an index seek)."""
    size = clamp_limit(limit)
    query = _scoped(env)
    if workflow:
        query = query.where(ExecutionRow.workflow_name == workflow)
    if status:
        bad = sorted(set(status) - set(STATUSES))
        if bad:
            raise InvalidInput(f"unknown status {', '.join(bad)}; one of {', '.join(STATUSES)}")
        query = query.where(ExecutionRow.status.in_(status))
    for key, value in _tag_selector(tags).items():
        condition = and_(ExecutionTagRow.execution_id == ExecutionRow.id, ExecutionTagRow.key == key)
        if value is not None:
            condition = and_(condition, ExecutionTagRow.value == value)
        query = query.where(exists().where(condition))
    if since is not None:
        query = query.where(ExecutionRow.created_at >= since)
    if text:
        like = f"%{_escape_like(text)}%"
        query = query.where(
            or_(
                ExecutionRow.workflow_name.like(like, escape="\\"),
                ExecutionRow.reason.like(like, escape="\\"),
            )
        )
    if cursor:
        last_id = decode_cursor(cursor, CURSOR)
        query = query.where(ExecutionRow.id < str(last_id))
    rows = list(await session.scalars(query.order_by(ExecutionRow.id.desc()).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, encode_cursor(CURSOR, rows[-1].id) if more else None)


async def any_under(session: AsyncSession, env: Environment, workflow: str) -> bool:
    """Whether any execution at all is filed under ``workflow`` (its definition may be gone, or never was)."""
    found = await session.scalar(_scoped(env).where(ExecutionRow.workflow_name == workflow).limit(1))
    return found is not None


def _tag_selector(selector: str | None) -> dict[str, str | None]:
    return labels.parse_selector(selector, max_value=MAX_TAG_VALUE)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def set_tags(
    session: AsyncSession, row: ExecutionRow, tags: Mapping[str, str | None], *, replace: bool
) -> dict[str, str]:
    """Merge tags (a ``None`` value removes the key), or replace them all.

    Concurrent merges into one execution take turns on its row (on SQLite the write lock does that
    already): each reads the tags the previous one wrote, so none is lost and none collides on the key.
    ``FOR NO KEY UPDATE`` leaves inserts that reference the execution (logs, steps, results) free to go on.
    """
    await session.execute(select(ExecutionRow.id).where(ExecutionRow.id == row.id).with_for_update(key_share=True))
    current = (await tags_of(session, [row.id]))[row.id]
    merged = {} if replace else dict(current)
    for key, value in tags.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    merged = validate_tags(merged)
    await session.execute(delete(ExecutionTagRow).where(ExecutionTagRow.execution_id == row.id))
    for key, value in merged.items():
        session.add(ExecutionTagRow(execution_id=row.id, key=key, value=value))
    await session.flush()
    return merged


def ensure_abortable(row: ExecutionRow) -> None:
    if row.status in TERMINAL:
        raise Conflict(f"execution {row.workflow_name}#{row.number} already finished ({row.status})")


async def mark_aborted(session: AsyncSession, execution_id: str, reason: str) -> bool:
    """Abort a queued execution in the store (a running one is aborted by its executor)."""
    now = utcnow()
    result = await session.execute(
        update(ExecutionRow)
        .where(ExecutionRow.id == execution_id, ExecutionRow.status == "queued")
        .values(status="aborted", reason=reason, finished_at=now)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await session.execute(
        update(StepRow)
        .where(StepRow.execution_id == execution_id, StepRow.status == "queued")
        .values(status="skipped", reason="execution aborted")
    )
    return True
