"""``testgate db``: migrate the configured database (embedded SQLite or ``TESTGATE_DATABASE_URL``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import typer
from rich.markup import escape
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from testgate.cli import output
from testgate.cli.params import DataDir, Target
from testgate.config import Settings
from testgate.oauth import keys
from testgate.store.db import TROUBLE, Database, create_engine, unusable
from testgate.store.migrate import current_revision, head_revision, known, upgrade

app = typer.Typer(help="The database: migrations and the OAuth signing key.", no_args_is_help=True)


def _where(settings: Settings) -> str:
    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


def _on_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[str | None]]) -> str | None:
    async def go() -> str | None:
        engine = create_engine(settings.effective_database_url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except TROUBLE as exc:
        output.err.print(
            f"[bold red]error:[/] {escape(unusable(settings.effective_database_url, exc))}", soft_wrap=True
        )
        raise typer.Exit(1) from None


def _describe(revision: str | None) -> str:
    head = head_revision()
    if revision is None:
        return f"empty (no migrations applied; head is {head})"
    if revision == head:
        return f"{revision} (head)"
    if not known(revision):
        return f"{revision} (unknown to this version, whose head is {head}: a newer testgate migrated it)"
    return f"{revision} (behind head {head}: run testgate db upgrade)"


@app.command("upgrade")
def upgrade_(data_dir: DataDir = None) -> None:
    """Apply every pending migration, then print the revision."""
    settings = Target(data_dir).settings()

    async def work(engine: AsyncEngine) -> str | None:
        await upgrade(engine)
        return await current_revision(engine)

    revision = _on_engine(settings, work)
    output.note(f"migrated {escape(_where(settings))}")
    output.echo(_describe(revision))


@app.command()
def current(data_dir: DataDir = None) -> None:
    """Print the database's migration revision."""
    settings = Target(data_dir).settings()
    revision = _on_engine(settings, current_revision)
    output.note(f"database {escape(_where(settings))}")
    output.echo(_describe(revision))


@app.command("rotate-signing-key")
def rotate_signing_key(data_dir: DataDir = None) -> None:
    """Make a new OAuth signing key (encrypted with this environment's TESTGATE_OAUTH__KEY_ENCRYPTION_SECRET)
    and retire the others from signing; they keep verifying the tokens they signed until those expire.

    This is how the key encryption secret is changed: set the new secret on every replica, run this once,
    then start them.
    """
    settings = Target(data_dir).settings()

    async def work(engine: AsyncEngine) -> str | None:
        await upgrade(engine)
        async with Database(engine).session() as session:
            row = await keys.rotate(session, settings.oauth)
            return row.kid

    kid = _on_engine(settings, work)
    encrypted = "encrypted" if settings.oauth.key_encryption_secret is not None else "not encrypted (no secret set)"
    output.note(f"the previous keys verify the tokens they signed until those expire; {escape(_where(settings))}")
    output.echo(f"signing key {kid} ({encrypted})")
