"""Who is calling a tool, and where: resolved per request from the transport, never from tool arguments.

Hosted transports authenticate every HTTP request and put a ``Caller`` in its ASGI scope (see
``guard``); stdio serves one local caller fixed when the server is built.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST
from starlette.requests import Request

from testgate.access.principal import Principal
from testgate.http.origin import MAX_USER_AGENT
from testgate.operations.context import Transport

SCOPE_KEY = "testgate.mcp.caller"


@dataclass(frozen=True)
class Caller:
    """The authenticated principal and the environment its request addressed."""

    principal: Principal
    organization: str
    environment: str
    transport: Transport
    request_id: str | None = None
    source_address: str | None = None
    user_agent: str | None = None

    @property
    def key(self) -> str:
        """A stable identity for binding sessions and confirmations: principal and environment.

        An OAuth principal is its person and client, not its access token (``id`` is the token's ``jti``):
        a client refreshes its token every hour or so, and its session must outlive that.
        """
        p = self.principal
        ident = None if p.kind == "oauth" else p.id
        # repr of strings and None: unambiguous like JSON, a fifth of json.dumps's cost on every request.
        return repr((p.kind, ident, p.user_id, p.client_id, p.organization_id, self.organization, self.environment))


def caller_of(ctx: ServerRequestContext[Any, Any], local: Caller | None) -> Caller:
    """The caller of the request ``ctx`` belongs to.

    An HTTP request MUST carry the caller its guard authenticated; the local caller is used only
    when there is no HTTP request at all (stdio), so an unguarded HTTP path can never act as the owner.
    """
    request = ctx.request
    if isinstance(request, Request):
        caller = request.scope.get(SCOPE_KEY)
        if not isinstance(caller, Caller):
            raise MCPError(code=INVALID_REQUEST, message="this request was not authenticated")
        return caller
    if local is None:
        raise MCPError(code=INVALID_REQUEST, message="this server has no local caller")
    return replace(local, request_id=str(ctx.request_id), user_agent=local.user_agent or _client_name(ctx))


def binding_key(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """The principal ``requestState`` is sealed to: the HTTP caller and its environment (None on stdio)."""
    request = ctx.request
    caller = request.scope.get(SCOPE_KEY) if isinstance(request, Request) else None
    return caller.key if isinstance(caller, Caller) else None


def _client_name(ctx: ServerRequestContext[Any, Any]) -> str | None:
    params = ctx.session.client_params
    info = params.client_info if params is not None else None
    if info is None:
        return None
    return f"{info.name}/{info.version}"[:MAX_USER_AGENT]
