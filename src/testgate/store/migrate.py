"""Alembic, driven from Python: ``upgrade`` at start and from ``testgate db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


class UnknownRevision(Exception):
    """The database's schema is at a revision this version of testgate does not have (a newer one migrated it)."""

    def __init__(self, revision: str) -> None:
        super().__init__(
            f"its schema is at revision {revision!r}, which this version of testgate does not know (a newer "
            "version migrated it): run that version, or restore a backup taken before"
        )


def known(revision: str) -> bool:
    """Whether ``revision`` is one of this version's migrations."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` on ``engine``."""
    cfg = alembic_config()

    def run(connection: Connection) -> None:
        serialize_startup(connection)
        current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and not known(current):
            raise UnknownRevision(current)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


STARTUP_LOCK = 0x7465_7374  # "test": any constant shared by every replica


def serialize_startup(connection: Connection) -> None:
    """On PostgreSQL, let one replica at a time migrate and bootstrap (held until the transaction ends)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({STARTUP_LOCK})")


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
