"""The panic guard: an unhandled exception anywhere below becomes one answer, one log line and one audit event.

The client gets 500 problem+json, or JSON-RPC -32603 on MCP endpoints, carrying only the request id (never
the exception text). The log line carries the stack. The audit event (action ``http.panic``, outcome
``error``) is written in a transaction of its own, to the chain of the organization the path names (else
the default organization). The process keeps serving: nothing here is fatal. A response already started
cannot be replaced; then the connection is left for the server to close, and the log and audit still happen.

An error that says the database is unreachable is no panic: 503 (retry later), a warning, and no audit
event, whose write would wait on the same database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from testgate.access.principal import Principal
from testgate.audit import recorder
from testgate.errors import NotFound
from testgate.http import metrics, paths, replies
from testgate.http.observe import progress_of
from testgate.http.origin import origin_of
from testgate.http.request_id import scope_request_id
from testgate.mcp.caller import SCOPE_KEY, Caller
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.db import database_down

log = structlog.get_logger("testgate.http")

AUDIT_TIMEOUT = 5.0  # seconds the audit write may take; a panic caused by the database must not hang

PlatformRef = Callable[[], Platform | None]


class PanicGuard:
    """Answer, log and audit any exception the application lets escape."""

    def __init__(self, app: ASGIApp, *, platform: PlatformRef, default_organization: str) -> None:
        self.app, self.platform, self.default_organization = app, platform, default_organization

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        progress, send = progress_of(scope, send)
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            # The client hung up while its body was read: nobody to answer, nothing broken.
            log.info("client went away mid-request", path=scope["path"])
        except Exception as exc:
            request_id = scope_request_id(scope)
            if (cause := database_down(exc)) is not None:
                await self._unavailable(scope, receive, send, progress.status, request_id, cause)
                return
            log.error("unhandled error", request_id=request_id, path=scope["path"], exc_info=exc)
            metrics.PANICS.inc()
            if not progress.status:
                detail = f"an unexpected error occurred; quote request id {request_id} when reporting it"
                await replies.refusal(scope, 500, "internal-error", "Internal error", detail)(scope, receive, send)
            await self._audit(scope, exc, request_id)

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, started: int | None, request_id: str, cause: BaseException
    ) -> None:
        """The database is unreachable: 503 (retry later), a warning without a stack, no panic and no audit
        event (its write would wait on the same database; /readyz says the replica is not ready)."""
        reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        log.warning("the database is unreachable", request_id=request_id, path=scope["path"], error=reason)
        if not started:
            detail = f"the database is unreachable; try again shortly (request id {request_id})"
            reply = replies.refusal(scope, 503, "database-unavailable", "Database unavailable", detail)
            await reply(scope, receive, send)

    async def _audit(self, scope: Scope, exc: BaseException, request_id: str) -> None:
        platform = self.platform()
        if platform is None:
            return
        try:
            with anyio.fail_after(AUDIT_TIMEOUT):
                async with platform.db.session() as session:
                    event = await self._event(session, scope, exc)
                    if event is not None:
                        await recorder.record(session, event)
        except Exception:
            log.exception("audit write failed for an unhandled error", request_id=request_id)

    async def _event(self, session: AsyncSession, scope: Scope, exc: BaseException) -> recorder.Event | None:
        path = scope["path"]
        principal = principal_of(scope)
        org_id = await self._organization(session, paths.organization_of(path), principal)
        if org_id is None:
            return None
        return recorder.Event(
            organization_id=org_id,
            action="http.panic",
            outcome="error",
            transport=paths.transport_of(path),
            actor_type=principal.kind if principal else "anonymous",
            actor_id=principal.id if principal else None,
            actor_name=principal.name if principal else "",
            reason=f"internal error ({type(exc).__name__})",
            arguments={"method": scope.get("method", ""), "path": path},
            **origin_of(scope),
        )

    async def _organization(self, session: AsyncSession, slug: str | None, principal: Principal | None) -> str | None:
        """The organization the path names, else the caller's, else the default one."""
        if slug and (org_id := await _org_id(session, slug)) is not None:
            return org_id
        if principal is not None:
            return principal.organization_id
        return await _org_id(session, self.default_organization)


async def _org_id(session: AsyncSession, slug: str) -> str | None:
    try:
        return (await tenancy.organization_by_slug(session, slug)).id
    except NotFound:
        return None


def principal_of(scope: Scope) -> Principal | None:
    """Who made the request, when authentication got that far (REST state or the MCP caller)."""
    state: dict[str, Any] = scope.get("state", {})
    principal = state.get("principal")
    if isinstance(principal, Principal):
        return principal
    caller = scope.get(SCOPE_KEY)
    return caller.principal if isinstance(caller, Caller) else None
