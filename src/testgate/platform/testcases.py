"""Test cases: documented tests (intent, steps, expected result), optionally linked to automated ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.errors import Conflict, NotFound
from testgate.platform.labels import matches, parse_selector
from testgate.platform.pagination import clamp_limit, decode_cursor, encode_cursor
from testgate.store.base import utcnow
from testgate.store.tenancy import Environment
from testgate.store.workflows import CaseRow

CURSOR = "testcases"  # the list a cursor belongs to (``pagination.encode_cursor``)

FIELDS = (
    "name",
    "description",
    "precondition",
    "expected_result",
    "steps",
    "labels",
    "priority",
    "automated_test",
    "workflow_name",
)


async def get(session: AsyncSession, env: Environment, case_id: str) -> CaseRow:
    row = await session.scalar(select(CaseRow).where(CaseRow.environment_id == env.id, CaseRow.id == case_id))
    if row is None:
        raise NotFound(f"test case {case_id!r} not found in environment {env.slug!r}")
    return row


async def get_many(session: AsyncSession, env: Environment, ids: Sequence[str]) -> list[CaseRow]:
    """Exactly the cases named (all must exist in this environment)."""
    rows = list(
        await session.scalars(select(CaseRow).where(CaseRow.environment_id == env.id, CaseRow.id.in_(list(ids))))
    )
    missing = sorted(set(ids) - {r.id for r in rows})
    if missing:
        raise NotFound(f"test case(s) not found in environment {env.slug!r}: {', '.join(missing)}")
    return sorted(rows, key=lambda r: r.name)


async def list_page(
    session: AsyncSession,
    env: Environment,
    *,
    text: str | None = None,
    selector: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> tuple[list[CaseRow], str | None]:
    size = clamp_limit(limit)
    wanted = parse_selector(selector)
    needle = (text or "").lower()
    query = select(CaseRow).where(CaseRow.environment_id == env.id).order_by(CaseRow.id)
    if cursor:
        after = decode_cursor(cursor, CURSOR)
        query = query.where(CaseRow.id > str(after))
    found: list[CaseRow] = []
    # Label and text filters run in Python, so scan in index order until the page is full.
    async for row in await session.stream_scalars(query.execution_options(yield_per=500)):
        if matches(row.labels, wanted) and (
            not needle or needle in row.name.lower() or needle in row.description.lower()
        ):
            found.append(row)
            if len(found) > size:
                break
    more = len(found) > size
    found = found[:size]
    return found, encode_cursor(CURSOR, found[-1].id) if more else None


async def _ensure_unique(session: AsyncSession, env: Environment, name: str, own_id: str | None) -> None:
    clash = await session.scalar(select(CaseRow.id).where(CaseRow.environment_id == env.id, CaseRow.name == name))
    if clash is not None and clash != own_id:
        raise Conflict(f"a test case named {name!r} already exists ({clash})")


async def create(session: AsyncSession, env: Environment, values: dict[str, Any]) -> CaseRow:
    await _ensure_unique(session, env, values["name"], None)
    row = CaseRow(environment_id=env.id, **{k: v for k, v in values.items() if k in FIELDS})
    session.add(row)
    await session.flush()
    return row


async def update(session: AsyncSession, row: CaseRow, env: Environment, changes: dict[str, Any]) -> CaseRow:
    if "name" in changes and changes["name"] is not None:
        await _ensure_unique(session, env, changes["name"], row.id)
    changed = False
    for key, value in changes.items():
        if key in FIELDS and getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    if changed:  # a PATCH that changes nothing leaves updated_at alone
        row.updated_at = utcnow()
        await session.flush()
    return row


async def delete_many(session: AsyncSession, rows: Sequence[CaseRow]) -> int:
    for row in rows:
        await session.delete(row)
    await session.flush()
    return len(rows)
