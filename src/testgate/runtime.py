"""Assembling a running platform: engine, migrations, default tenancy, executor.

Used by the server's lifespan, the local CLI and ``mcp serve`` on stdio, so all three start the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from testgate.config import Settings
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.platform.tenancy import Bootstrap
from testgate.store.db import Database, create_engine
from testgate.store.migrate import upgrade

log = structlog.get_logger("testgate.runtime")


@asynccontextmanager
async def open_platform(settings: Settings, *, executor: bool = True) -> AsyncIterator[Platform]:
    """A migrated, bootstrapped platform with its executor started; everything closed on exit."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(create_engine(settings.effective_database_url, echo=settings.database_echo))
    platform = Platform(settings=settings, db=db)
    try:
        await upgrade(db.engine)
        if executor:
            from testgate.runner.local import LocalExecutor

            platform.executor = LocalExecutor(platform)
            await platform.executor.start()
        yield platform
    finally:
        if platform.executor is not None:
            await platform.executor.close()
        await db.dispose()


async def bootstrap_default(platform: Platform, *, issue_setup_token: bool = False) -> Bootstrap:
    """Create the default organization and environment if missing (and, when asked, a setup link)."""
    settings = platform.settings
    async with platform.db.session() as session:
        return await tenancy.bootstrap(
            session,
            settings.default_organization,
            settings.default_environment,
            issue_setup_token=issue_setup_token,
        )


def setup_link(settings: Settings, boot: Bootstrap) -> str | None:
    if boot.setup_token is None:
        return None
    return f"{settings.base_url}/setup?token={boot.setup_token}"
