"""The front door of the HTTP application: its middleware, in one deliberate order, plus probes and metrics.

Outermost first (each layer sees what the ones before it decided):

    1. Forwarded     trusted proxies' X-Forwarded-For / Forwarded -> scope["client"], so everything after
                     (logs, limits, audit) sees the real client; only with ``http.trusted_proxies``
    2. observe       X-Request-ID accepted or generated, bound to every log line, returned on every
                     response; then one access-log line per request, whatever answered it, and the
                     metrics (requests by route template and status, latency; the refusals below too)
    3. body limit    413 before anything reads or authenticates (JSON-RPC on MCP, problem+json elsewhere)
    4. Host/Origin   DNS rebinding and cross-site requests refused (421/403), the MCP transports' own rule
    5. CORS          preflights answered before authentication; only with ``http.cors_origins``
    6. rate limit    429 per principal and per address (stricter on sign-in attempts), before any work is
                     done; a browser's sign-in form post gets the sign-in page (429) the console renders
    7. panic guard   an unhandled exception -> 500 / -32603 with the request id, logged and audited
    8. timeout       504 when no response has started within ``http.request_timeout``

Inside the application come bearer authentication, the MCP transports and the REST routes. The order is
a security property: refusals that cost nothing (size, names, origins, rate) come before anything that
touches the database, and the panic guard sits inside them so a crash never skips the access log.

A ``Lane`` takes the requests under one mount (the hosted MCP endpoints) through these same layers
straight to that mount's app, past the framework's own layers (FastAPI's error page, exception handlers,
body limit, telemetry, file-closing exit stack) and its route matching, none of which an MCP transport
uses: the layers above already refuse, answer crashes and bound the body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Scope

from testgate.config import Settings
from testgate.http import hosts
from testgate.http.cors import Cors
from testgate.http.forwarded import Forwarded
from testgate.http.health import Probes
from testgate.http.limits import BodyLimit, upload_limit
from testgate.http.observe import Observe
from testgate.http.panic import PanicGuard, PlatformRef
from testgate.http.ratelimit import LimitedPage, Limiter, RateLimit
from testgate.http.scrape import Scraper, listener
from testgate.http.timeouts import Timeout


class FrontDoor:
    """The stack, probes and metrics of one application, and the resources they hold (Redis, a listener)."""

    def __init__(
        self, settings: Settings, platform: PlatformRef, pages: Mapping[str, LimitedPage] | None = None
    ) -> None:
        self.settings = settings
        self.pages = pages or {}  # the rate limit's pages for browsers' form posts (the console's sign-in)
        http = settings.http
        self.security = hosts.transport_security(settings)
        self.limiter = Limiter(http, settings.shared_redis_url)
        self.scraper = Scraper(
            platform, cache=http.metrics_cache_seconds, default_organization=settings.default_organization
        )
        self.probes = Probes(platform, self.limiter)
        self.platform = platform

    def middleware(self) -> list[Middleware]:
        """The layers, outermost first (see the module docstring for why this order)."""
        http = self.settings.http
        layers: list[Middleware] = []
        if http.trusted_proxies:
            layers.append(Middleware(Forwarded, trusted=http.trusted_proxies, header=http.forwarded_header))
        layers += [
            Middleware(Observe),
            Middleware(BodyLimit, limit=http.max_body_bytes, uploads=upload_limit(self.settings.max_upload_bytes)),
            Middleware(hosts.HostCheck, security=self.security),
        ]
        if http.cors_origins:
            layers.append(Middleware(Cors, origins=http.cors_origins))
        layers.append(Middleware(RateLimit, limiter=self.limiter, pages=self.pages))
        layers.append(
            Middleware(PanicGuard, platform=self.platform, default_organization=self.settings.default_organization)
        )
        if http.request_timeout > 0:
            layers.append(Middleware(Timeout, seconds=http.request_timeout))
        return layers

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` inside the layers, for a ``Lane``."""
        for cls, args, kwargs in reversed(self.middleware()):
            app = cls(app, *args, **kwargs)
        return app

    def install(self, app: Starlette) -> None:
        """Put the layers outside every middleware ``app`` has so far, and add the probe and metrics routes."""
        app.user_middleware[0:0] = self.middleware()
        routes = self.probes.routes()
        if self.settings.http.metrics_listen is None:
            routes.append(self.scraper.route())
        app.router.routes[0:0] = routes

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Run the metrics listener (when configured) and close the Redis connections at the end."""
        try:
            listen = self.settings.http.metrics_listen
            if listen is None:
                yield
            else:
                async with listener(self.scraper, listen):
                    yield
        finally:
            await self.limiter.close()


class Lane:
    """The HTTP requests under ``mount``: through the front door's layers to the mount's app, nothing else."""

    def __init__(self, front: FrontDoor, mount: Mount) -> None:
        self.mount, self.app = mount, front.wrap(mount.app)

    def takes(self, scope: Scope) -> bool:
        """``scope`` is an HTTP request for a path under the mount; if so, it is routed there already.

        The mount's path parameters and root path go into ``scope`` here, as the mount itself would
        put them: matched once, not again by the mount behind the layers.
        """
        if scope["type"] != "http":
            return False
        match, child = self.mount.matches(scope)
        if match is not Match.FULL:
            return False
        scope.update(child)
        return True
