"""CORS for browser-based clients: off unless ``http.cors_origins`` names origins; preflights answered before auth.

MCP clients in a browser need the MCP headers: ``Mcp-Session-Id`` and ``Mcp-Protocol-Version`` sent (and
the session id readable), ``Last-Event-ID`` to resume a stream. Credentials are bearer tokens in the
Authorization header, never cookies, so ``Access-Control-Allow-Credentials`` is not sent. The discovery and
token endpoints keep their own CORS (any origin), so this layer leaves them alone.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from testgate.http import paths

ALLOW_HEADERS = ["Authorization", "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-ID"]
EXPOSE_HEADERS = ["Mcp-Session-Id", "X-Request-ID", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining"]
ALLOW_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
MAX_AGE = 600  # seconds a browser may cache a preflight answer


class Cors:
    """Starlette's CORS middleware with the allowlist, for every path but the ones open to any origin."""

    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=ALLOW_METHODS,
            allow_headers=ALLOW_HEADERS,
            expose_headers=EXPOSE_HEADERS,
            allow_credentials=False,
            max_age=MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and paths.is_open_origin(scope["path"]):
            await self.app(scope, receive, send)
            return
        await self.cors(scope, receive, send)
