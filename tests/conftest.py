"""Shared fixtures: a real platform on a real SQLite file (and PostgreSQL where asked)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from testgate.access.principal import Principal, local_owner
from testgate.config import RunnerSettings, Settings
from testgate.operations.context import Call
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.db import Database, create_engine
from testgate.store.migrate import upgrade

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REQUIRE_SERVICES = os.environ.get("TESTGATE_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("TESTGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def service_unavailable(name: str, why: str) -> None:
    """Skip on a laptop without the service; fail in CI, where the service is mandatory."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is required (TESTGATE_REQUIRE_SERVICES=1) but unavailable: {why}")
    pytest.skip(f"{name} unavailable: {why}")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        config_dir=tmp_path / "config",
        runner=RunnerSettings(heartbeat_seconds=0.5, kill_grace_seconds=1.0),
    )


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    engine = create_engine(settings.effective_database_url)
    await upgrade(engine)
    db = Database(engine)
    async with db.session() as session:
        await tenancy.bootstrap(session, "acme", "dev")
    yield Platform(settings=settings, db=db)
    await db.dispose()


@pytest.fixture
async def owner(platform: Platform) -> Principal:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
    return local_owner(org.id)


@pytest.fixture
def call(owner: Principal) -> Call:
    return Call(principal=owner, organization="acme", environment="dev", transport="internal")
