"""``create_app(settings)``: the ASGI application (REST API, MCP, OAuth and console) and its lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, cast

import structlog
from fastapi import FastAPI
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from testgate import __version__, periodic
from testgate.audit import retention
from testgate.config import Settings
from testgate.oauth import housekeeping
from testgate.platform.context import Platform
from testgate.runtime import bootstrap_default, open_platform, setup_link

log = structlog.get_logger("testgate.app")


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep what startup built (modules, routes, models, engines) out of the garbage collector's way.

    Every full collection walks every tracked object, and most of a running server's objects are the
    ones startup made, which live as long as it does. ``gc.freeze`` moves them to a permanent
    generation that collections skip (measured: about 15 % more MCP calls per second at 16
    connections, docs/performance.md). Shutdown unfreezes them, so an application started and stopped
    many times in one process (the tests) still has its garbage collected.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class Application(FastAPI):
    """FastAPI, with lanes (``http.stack.Lane``) in front of all of it.

    A request a lane takes never enters FastAPI's ``__call__``, whose check for a configured
    OpenTelemetry provider (three lookups in ``os.environ``) cost every MCP request more than routing it.
    """

    def __init__(self, **kwargs: Any) -> None:
        from testgate.http.stack import Lane

        super().__init__(**kwargs)
        self.lanes: list[Lane] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.root_path:
            scope["root_path"] = self.root_path  # as FastAPI's own __call__ does first
        for lane in self.lanes:
            if lane.takes(scope):
                scope["app"] = self  # as Starlette sets it for everything behind it
                await lane.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, platform: Platform | None = None) -> FastAPI:
    """Build the application. With ``platform`` given (tests), its lifecycle is the caller's."""
    from testgate.api import routes as api_routes
    from testgate.http.stack import FrontDoor, Lane
    from testgate.http.statekeys import state_keys
    from testgate.mcp.hosted import MOUNT, HostedMCP
    from testgate.oauth import routes as oauth_routes
    from testgate.web import routes as web_routes

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            live = platform if platform is not None else await stack.enter_async_context(open_platform(settings))
            app.state.platform = live
            boot = await bootstrap_default(live, issue_setup_token=True)
            link = setup_link(settings, boot)
            if link:
                log.warning("no owner yet: open this one-time link to create the first owner", link=link)
            stack.push_async_callback(console_forms.close)
            await stack.enter_async_context(front.lifespan())
            await stack.enter_async_context(mcp.lifespan())
            await stack.enter_async_context(retention.running(live))
            await stack.enter_async_context(
                periodic.running("oauth housekeeping", lambda: housekeeping.purge_now(live.db, settings.oauth), 3600)
            )
            stack.enter_context(frozen_heap())
            yield

    app = Application(
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
    console_forms = web_routes.install(app)
    mcp = HostedMCP(settings, lambda: cast(Platform, app.state.platform), state_keys=state_keys(settings))
    # The front door (middleware, probes, metrics) goes on last: it wraps everything mounted above.
    front = FrontDoor(
        settings, lambda: cast(Platform | None, getattr(app.state, "platform", None)), pages=web_routes.LIMITED_PAGES
    )
    front.install(app)
    # The hosted MCP endpoints take a lane of their own: the front door's layers, then the MCP mount,
    # without FastAPI's layers and the matching against every REST and console route.
    app.lanes.append(Lane(front, Mount(MOUNT, app=mcp)))
    return app
