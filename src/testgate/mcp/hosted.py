"""The hosted MCP endpoints of every environment, mounted once at ``MOUNT``:

    .../environments/{env}/mcp        streamable HTTP: 2025-11-25 sessions and 2026-07-28 stateless requests
    .../environments/{env}/sse        the legacy HTTP+SSE stream (2024-11-05 clients)
    .../environments/{env}/messages/  where legacy SSE clients POST their messages

One SDK server and one session manager serve all environments; the environment comes from the path of
each request, checked by the ``Guard`` on every request. The parent application's lifespan must enter
``HostedMCP.lifespan()`` (a mounted app's own lifespan never runs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.lowlevel import Server
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from testgate.config import Settings
from testgate.mcp.confirm import DEFAULT_TIMEOUT, ledger_for
from testgate.mcp.guard import Guard
from testgate.mcp.hold import HeldAnswers
from testgate.mcp.server import STATE_TTL, build_server
from testgate.mcp.tools import PlatformRef
from testgate.operations.context import Transport

MOUNT = "/organizations/{org}/environments/{env}"


class HostedMCP:
    """An ASGI app serving the MCP transports under every environment's path."""

    def __init__(
        self,
        settings: Settings,
        platform: PlatformRef,
        *,
        state_keys: Sequence[bytes | str] | None = None,
        confirm_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.ledger = ledger_for(settings.shared_redis_url, STATE_TTL, settings.http.rate_limit_prefix)
        self.server: Server[Any] = build_server(
            platform, state_keys=state_keys, confirm_timeout=confirm_timeout, ledger=self.ledger
        )
        # Host and Origin: the front door's ``HostCheck`` applies ``transport_security(settings)`` with the
        # SDK's own validator to every request before its lane reaches this app (the only way here), so the
        # transports do not check the same headers again; they still check a POST's Content-Type.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        # upload_results carries whole JUnit files, and JSON escaping can double their size on the wire.
        body_limit = max(DEFAULT_MAX_REQUEST_BODY_SIZE, 2 * settings.max_upload_bytes)
        self.sessions = StreamableHTTPSessionManager(
            app=self.server, security_settings=security, max_request_body_size=body_limit
        )
        self.sse = SseServerTransport("/messages/", security_settings=security, max_request_body_size=body_limit)

        def guarded(app: ASGIApp, transport: Transport) -> Guard:
            return Guard(app, transport=transport, platform=platform, settings=settings)

        # A streamable HTTP request answers on its own response, so its answers can wait for their audit
        # events at the door (``hold``); the legacy transport answers on another request's stream.
        self.streamable = guarded(HeldAnswers(self.sessions.handle_request), "mcp-http")
        self.router = Router(
            routes=[
                Route("/mcp", endpoint=self.streamable),
                Route("/sse", endpoint=guarded(self._sse_stream, "mcp-sse"), methods=["GET"]),
                Mount("/messages", app=guarded(self.sse.handle_post_message, "mcp-sse")),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _below_mount(scope) == "/mcp":
            await self.streamable(scope, receive, send)  # every tool call: straight there, no route matching
            return
        await self.router(scope, receive, send)

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Run the streamable-HTTP session manager (its task group holds every legacy session)."""
        try:
            async with self.sessions.run():
                yield
        finally:
            await self.ledger.close()

    async def _sse_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One legacy SSE connection: the server loop runs as long as the client keeps the stream open."""
        async with self.sse.connect_sse(scope, receive, send) as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())


def _below_mount(scope: Scope) -> str:
    """The path under the mount that routed ``scope`` (the mount put its prefix into ``root_path``)."""
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path
