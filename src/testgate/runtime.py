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
from testgate.platform.events import Events
from testgate.platform.notify import shared_events
from testgate.platform.tenancy import Bootstrap
from testgate.runner.base import Executor
from testgate.store.db import Database, create_engine
from testgate.store.migrate import serialize_startup, upgrade

log = structlog.get_logger("testgate.runtime")


def database_for(settings: Settings) -> Database:
    """The configured store, with the configured connection pool, for a process that keeps it."""
    engine = create_engine(
        settings.effective_database_url,
        echo=settings.database_echo,
        pool_size=settings.database_pool_size,
        pool_overflow=settings.database_pool_overflow,
    )
    return Database(engine)


@asynccontextmanager
async def open_platform(settings: Settings, *, executor: bool = True) -> AsyncIterator[Platform]:
    """A migrated, bootstrapped platform with its executor started; everything closed on exit."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = database_for(settings)
    # Cross-process notifications (PostgreSQL LISTEN/NOTIFY or Redis) when the store is shared.
    shared = shared_events(settings)
    platform = Platform(settings=settings, db=db, events=shared or Events())
    try:
        await upgrade(db.engine)
        lax = await db.lax_durability()
        if lax:
            # Every answer waits for its audit event's commit; with these, committed need not mean on disk.
            log.warning(
                "PostgreSQL may confirm a commit before it is on disk: a crash of the database can lose the "
                "last changes and audit events whose answers already went out; set these back to on",
                settings=lax,
            )
        await db.access.listen()
        if shared is not None:
            await shared.start()
        if executor:
            platform.executor = _executor(platform)
            await platform.executor.start()
        yield platform
    finally:
        if platform.executor is not None:
            await platform.executor.close()
        if shared is not None:
            await shared.close()
        await platform.audit.close()
        await db.dispose()


def _executor(platform: Platform) -> Executor:
    """The executor the settings choose: the local runner, or Celery workers."""
    if platform.settings.runner.executor == "celery":
        from testgate.runner.distributed import CeleryExecutor

        return CeleryExecutor(platform)
    from testgate.runner.local import LocalExecutor

    return LocalExecutor(platform)


async def bootstrap_default(platform: Platform, *, issue_setup_token: bool = False) -> Bootstrap:
    """Create the default organization and environment if missing (and, when asked, a setup link)."""
    settings = platform.settings
    async with platform.db.session() as session:
        # Two replicas starting together must not both create the default organization.
        await (await session.connection()).run_sync(serialize_startup)
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
