"""What a handler receives: the caller, the resolved scope, a transaction and the platform."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access.principal import Principal
from testgate.platform.context import Platform
from testgate.store.tenancy import Environment, Organization

Transport = Literal["mcp-http", "mcp-sse", "mcp-stdio", "rest", "cli", "web", "internal"]
ConfirmOutcome = Literal["accepted", "declined", "cancelled", "explicit"]


class Confirmer(Protocol):
    async def __call__(self, message: str) -> ConfirmOutcome:
        """Ask the person behind the caller; raise ``ConfirmationRequired`` if nobody can be asked."""


class Progress(Protocol):
    async def __call__(self, progress: float, total: float | None, message: str | None) -> None: ...


class AnswerHold(Protocol):
    def __call__(self, event: asyncio.Task[None]) -> bool:
        """Take over waiting for a read's audit ``event``: the entry point MUST NOT let the call's answer out
        before ``event`` is done, and MUST answer with its error (``AuditFailure``) instead if it fails.
        False when the answer can no longer be held (``dispatch`` then waits for the event itself)."""


@dataclass
class Call:
    """One call from an entry point: who, where, how, and the hooks the transport offers."""

    principal: Principal
    organization: str
    environment: str | None = None
    transport: Transport = "internal"
    request_id: str | None = None
    source_address: str | None = None
    user_agent: str | None = None
    confirm: Confirmer | None = None
    progress: Progress | None = None
    hold: AnswerHold | None = None


@dataclass(frozen=True)
class Resource:
    type: str
    id: str
    name: str = ""


@dataclass
class OpContext:
    platform: Platform
    call: Call
    organization: Organization
    environment: Environment | None
    session: AsyncSession | None
    confirmed: Any = None
    resources: list[Resource] = field(default_factory=list)
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    audit_arguments: dict[str, Any] | None = None
    progressed: float | None = None  # the last progress reported

    @property
    def principal(self) -> Principal:
        return self.call.principal

    @property
    def env(self) -> Environment:
        if self.environment is None:
            raise RuntimeError("an environment-scoped operation ran without an environment")
        return self.environment

    @property
    def db(self) -> AsyncSession:
        if self.session is None:
            raise RuntimeError("this operation runs outside dispatch's transaction")
        return self.session

    def touch(self, type_: str, id_: str, name: str = "") -> None:
        """Name a resource this call acted on (for the audit event)."""
        self.resources.append(Resource(type_, id_, name))

    async def report(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Tell the caller how far the call got. MCP: each notification's progress MUST be greater than the
        last one's, so a value that does not rise is not sent."""
        if self.call.progress is None or (self.progressed is not None and progress <= self.progressed):
            return
        self.progressed = progress
        await self.call.progress(progress, total, message)
