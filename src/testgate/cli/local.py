"""The in-process client: with no control plane login, a command runs the platform in this process.

It opens the embedded database (migrating it, creating the default organization and environment on a
fresh data directory) and calls ``dispatch`` as the local owner with transport ``cli``, so every
command is authorized and audited like any other call. ``run`` is the CLI's one place that converts
domain errors: a red message on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import typer
from pydantic import BaseModel

from testgate import __version__
from testgate.access.principal import local_owner
from testgate.cli import output
from testgate.cli.params import Target
from testgate.errors import ConfirmationRequired, StorageUnavailable, TestgateError
from testgate.ids import new_id
from testgate.operations.context import Call, Confirmer, ConfirmOutcome
from testgate.operations.dispatch import dispatch
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.runtime import bootstrap_default, open_platform
from testgate.store.db import TROUBLE, unusable

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

EXIT_INTERRUPTED = 130


@dataclass
class Local:
    """A platform running in this process, and the call every command makes on it."""

    platform: Platform
    call: Call

    async def op(self, name: str, args: Mapping[str, Any], output: type[M]) -> M:
        """Dispatch operation ``name`` and return its output model."""
        result = await dispatch(self.platform, self.call, name, dict(args))
        if not isinstance(result, output):
            raise TypeError(f"{name} returned {type(result).__name__}, not {output.__name__}")
        return result


def confirmer(yes: bool) -> Confirmer:
    """Ask on the terminal; ``--yes`` confirms explicitly; with no terminal to ask, refuse."""

    async def confirm(message: str) -> ConfirmOutcome:
        if yes:
            return "explicit"
        if not sys.stdin.isatty():
            raise ConfirmationRequired(
                f"{message} This is destructive and stdin is not a terminal, so nobody can confirm it; "
                "nothing was changed. Re-run with --yes to confirm."
            )
        return "accepted" if typer.confirm(message, default=False, err=True) else "declined"

    return confirm


def _user() -> str:
    try:
        return f"local:{getpass.getuser()}"
    except (OSError, KeyError):
        return "local"


async def _organization_id(platform: Platform, slug: str) -> str:
    async with platform.db.session() as session:
        return (await tenancy.organization_by_slug(session, slug)).id


@asynccontextmanager
async def connect(target: Target, *, executor: bool = False, yes: bool = False) -> AsyncIterator[Local]:
    """Open the platform in this process (with the local executor when the command runs workflows)."""
    settings = target.settings()
    async with AsyncExitStack() as opened:
        try:
            platform = await opened.enter_async_context(open_platform(settings, executor=executor))
            boot = await bootstrap_default(platform, issue_setup_token=False)
        except TROUBLE as exc:
            # Unreachable, refused, not a database: one line, as `testgate serve` says it, never a traceback.
            raise StorageUnavailable(unusable(settings.effective_database_url, exc)) from None
        org = target.organization or settings.default_organization
        org_id = boot.organization.id if org == boot.organization.slug else await _organization_id(platform, org)
        call = Call(
            principal=local_owner(org_id, name=_user()),
            organization=org,
            environment=target.environment or settings.default_environment,
            transport="cli",
            request_id=new_id(),
            user_agent=f"testgate-cli/{__version__}",
            confirm=confirmer(yes),
        )
        yield Local(platform, call)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine: domain errors exit 1 with a message, Ctrl-C exits 130."""
    try:
        return asyncio.run(main)
    except TestgateError as exc:
        output.error(exc)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        output.note("[yellow]interrupted[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def call(target: Target, name: str, args: Mapping[str, Any], result: type[M], *, yes: bool = False) -> M:
    """Run one operation in a fresh in-process platform and return its output model."""

    async def once() -> M:
        async with connect(target, yes=yes) as client:
            return await client.op(name, args, result)

    return run(once())
