"""A PostgreSQL that may confirm a commit before it is on disk is named at start-up: every answer waits for its
audit event's commit, and with ``synchronous_commit`` (or ``fsync``) off a database crash can lose events whose
answers already went out (docs/audit.md, "Durability")."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
import structlog
from sqlalchemy.engine import make_url
from tests.conftest import _drop_postgres_database, _postgres_database

from testgate.config import Settings
from testgate.runtime import open_platform
from testgate.store.db import Database, create_engine

WARNING = "PostgreSQL may confirm a commit before it is on disk"


async def _started(settings: Settings) -> list[dict[str, object]]:
    """The warnings ``open_platform`` logged while starting on ``settings``."""
    with structlog.testing.capture_logs() as logged:
        async with open_platform(settings, executor=False):
            pass
    return [entry for entry in logged if entry["log_level"] == "warning"]


@pytest.mark.postgres
async def test_a_database_that_does_not_wait_for_the_flush_is_named_at_start_up(tmp_path: Path) -> None:
    url = await _postgres_database()
    try:
        name = make_url(url).database
        conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        finally:
            await conn.close()
        warnings = await _started(Settings(data_dir=tmp_path / "data", database_url=url))
    finally:
        await _drop_postgres_database(url)
    assert [(w["event"], w["settings"]) for w in warnings if str(w["event"]).startswith(WARNING)] == [
        (
            "PostgreSQL may confirm a commit before it is on disk: a crash of the database can lose the last "
            "changes and audit events whose answers already went out; set these back to on",
            ["synchronous_commit=off"],
        )
    ]


@pytest.mark.postgres
async def test_a_database_at_postgresqls_defaults_starts_without_the_warning(tmp_path: Path) -> None:
    url = await _postgres_database()
    try:
        db = Database(create_engine(url))
        try:
            assert await db.lax_durability() == []
        finally:
            await db.dispose()
        warnings = await _started(Settings(data_dir=tmp_path / "data", database_url=url))
    finally:
        await _drop_postgres_database(url)
    assert not [w for w in warnings if str(w["event"]).startswith(WARNING)]


async def test_sqlite_has_nothing_to_warn_about(tmp_path: Path) -> None:
    db = Database(create_engine(Settings(data_dir=tmp_path).effective_database_url))
    try:
        assert await db.lax_durability() == []
    finally:
        await db.dispose()
