"""Audit fixtures: the test organization's chain (filled in bulk with correctly chained events, tampered
with in SQL) on SQLite, and on each real backend."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from testgate.access.principal import Principal, local_owner
from testgate.audit import recorder
from testgate.config import Settings
from testgate.operations.context import Call
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow
from testgate.store.db import Database, create_engine
from testgate.store.migrate import upgrade

INSERT_BATCH = 5000
LARGE = 100_000
LARGE_START = datetime(2026, 2, 1, tzinfo=UTC)


@dataclass
class Chain:
    """One organization's audit chain, and ways to fill and tamper with it."""

    platform: Platform
    org_id: str
    env_id: str

    @property
    def owner(self) -> Principal:
        return local_owner(self.org_id)

    def call(self, principal: Principal | None = None, **options: Any) -> Call:
        return Call(principal=principal or self.owner, organization="acme", **options)

    def values(self, seq: int, prev: str, time: datetime, action: str, **fields: Any) -> dict[str, Any]:
        """The columns of one event as the recorder would write them, hash included."""
        values: dict[str, Any] = {
            "seq": seq,
            "event_id": f"ev{seq:024d}",
            "time": time,
            "organization_id": self.org_id,
            "environment_id": self.env_id,
            "actor_type": "api_token",
            "actor_id": "tok-ci",
            "actor_name": "ci-bot",
            "transport": "rest",
            "action": action,
            "resources": [{"type": "workflow", "id": "wf-1", "name": "smoke"}],
            "outcome": "allowed",
            "reason": "",
            "confirmation": None,
            "request_id": f"req-{seq}",
            "source_address": "10.0.0.7",
            "user_agent": "pytest",
            "arguments": {"limit": 50, "selector": None},
            "prev_hash": prev,
        }
        values.update(fields)
        values["hash"] = recorder.digest(SimpleNamespace(**values))
        return values

    async def insert(
        self,
        count: int,
        *,
        start: datetime,
        step: timedelta = timedelta(seconds=1),
        actions: Sequence[str] = ("workflow.list",),
        **fields: Any,
    ) -> None:
        """Append ``count`` chained events in bulk (precomputed hashes, one INSERT per batch)."""
        async with self.platform.db.session() as session:
            seq, prev = await recorder.head(session, self.org_id)
        rows: list[dict[str, Any]] = []
        for i in range(count):
            seq += 1
            row = self.values(seq, prev, start + i * step, actions[i % len(actions)], **fields)
            prev = row["hash"]
            rows.append(row)
            if len(rows) == INSERT_BATCH:
                await self._flush(rows)
                rows = []
        if rows:
            await self._flush(rows)

    async def _flush(self, rows: list[dict[str, Any]]) -> None:
        async with self.platform.db.session() as session:
            await session.execute(insert(AuditEventRow.__table__), rows)

    async def events(self) -> list[AuditEventRow]:
        async with self.platform.db.session() as session:
            found = await session.scalars(
                select(AuditEventRow).where(AuditEventRow.organization_id == self.org_id).order_by(AuditEventRow.seq)
            )
            return list(found)

    async def sql(self, *statements: str, **params: Any) -> None:
        """Run raw SQL against the store, as someone with database access would."""
        async with self.platform.db.session() as session:
            for statement in statements:
                await session.execute(text(statement), {"org": self.org_id, **params})


async def chain_of(platform: Platform) -> Chain:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        env = await tenancy.environment_by_slug(session, org, "dev")
    return Chain(platform, org.id, env.id)


@pytest.fixture
async def chain(platform: Platform) -> Chain:
    return await chain_of(platform)


@pytest.fixture
async def backend_chain(backend_platform: Platform) -> Chain:
    return await chain_of(backend_platform)


@pytest.fixture
async def postgres_chain(postgres_platform: Platform) -> Chain:
    return await chain_of(postgres_platform)


async def _build_large_log(settings: Settings) -> str:
    engine = create_engine(settings.effective_database_url)
    await upgrade(engine)
    db = Database(engine)
    try:
        async with db.session() as session:
            await tenancy.bootstrap(session, "acme", "dev")
        chain = await chain_of(Platform(settings=settings, db=db))
        await chain.insert(LARGE, start=LARGE_START, actions=("workflow.list", "workflow.run", "testcase.update"))
        return chain.org_id
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def large_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    """100,000 chained events in an SQLite file, built once per test module (settings, organization id)."""
    base = tmp_path_factory.mktemp("large-audit-log")
    settings = Settings(data_dir=base / "data", config_dir=base / "config")
    return settings, asyncio.run(_build_large_log(settings))
