"""``create_app(settings)``: the ASGI application (REST API, MCP, OAuth and console) and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import cast

import structlog
from fastapi import FastAPI

from testgate import __version__
from testgate.config import Settings
from testgate.platform.context import Platform
from testgate.runtime import bootstrap_default, open_platform, setup_link

log = structlog.get_logger("testgate.app")


def create_app(settings: Settings, *, platform: Platform | None = None) -> FastAPI:
    """Build the application. With ``platform`` given (tests), its lifecycle is the caller's."""
    from testgate.api import routes as api_routes
    from testgate.oauth import routes as oauth_routes
    from testgate.mcp.hosted import MOUNT, HostedMCP

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            live = platform if platform is not None else await stack.enter_async_context(open_platform(settings))
            app.state.platform = live
            boot = await bootstrap_default(live, issue_setup_token=True)
            link = setup_link(settings, boot)
            if link:
                log.warning("no owner yet: open this one-time link to create the first owner", link=link)
            await stack.enter_async_context(mcp.lifespan())
            yield

    app = FastAPI(
        title="testgate",
        version=__version__,
        description="Test-orchestration control plane: REST API (the same operations as the MCP tools).",
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    if platform is not None:
        app.state.platform = platform
    api_routes.install(app)
    oauth_routes.install(app)
    mcp = HostedMCP(settings, lambda: cast(Platform, app.state.platform))
    app.mount(MOUNT, mcp)
    return app
