"""``/metrics`` in the Prometheus text format: on the main port for an admin token, or on a listener of its own.

Metrics describe the whole deployment (every organization's executions), so on the main port they are
for the operator: an admin API token of the default organization (401 without a token, 403 with another).
With ``http.metrics_listen`` set they are served without authentication on that address only (bind it to
a private interface the scraper reaches) and the main port does not serve them at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from testgate.access.verifier import bearer_of, verify_bearer
from testgate.errors import Unauthenticated
from testgate.http import metrics, paths, replies
from testgate.http.panic import PlatformRef
from testgate.platform import tenancy
from testgate.store.executions import ExecutionRow

log = structlog.get_logger("testgate.http")


class Scraper:
    """Renders the registry, refreshing the executions gauge from the database at most every ``cache`` seconds."""

    def __init__(self, platform: PlatformRef, *, cache: float, default_organization: str) -> None:
        self.platform, self.cache, self.default_organization = platform, cache, default_organization
        self._fresh_until = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Count executions by status (one grouped query), unless the last count is recent enough."""
        platform = self.platform()
        if platform is None or time.monotonic() < self._fresh_until:
            return
        async with self._lock:
            if time.monotonic() < self._fresh_until:
                return
            async with platform.db.session() as session:
                rows = (
                    await session.execute(select(ExecutionRow.status, func.count()).group_by(ExecutionRow.status))
                ).all()
            metrics.EXECUTIONS.clear()
            for status, count in rows:
                metrics.EXECUTIONS.labels(status).set(count)
            self._fresh_until = time.monotonic() + self.cache

    async def render(self, request: Request) -> Response:
        """The exposition, freshly counted."""
        await self.refresh()
        return Response(
            generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
        )

    async def protected(self, request: Request) -> Response:
        """The exposition for an admin token of the default organization."""
        refusal = await self._refusal(request)
        return refusal if refusal is not None else await self.render(request)

    async def _refusal(self, request: Request) -> Response | None:
        platform = self.platform()
        token = bearer_of(request.headers.get("authorization"))
        if platform is None or token is None:
            return _unauthorized(request, "metrics need an admin API token of the default organization")
        source = request.client.host if request.client else None
        try:
            principal = await verify_bearer(platform, token, source=source)
        except Unauthenticated as exc:
            return _unauthorized(request, str(exc))
        async with platform.db.session() as session:
            operator = await tenancy.organization_by_slug(session, self.default_organization)
        if principal.organization_id != operator.id or not principal.is_org_admin:
            detail = "metrics cover every organization: only an admin of the default organization may read them"
            return replies.refusal(request.scope, 403, "permission-denied", "Permission denied", detail)
        return None

    def route(self) -> Route:
        """``/metrics`` on the main port, behind the admin check."""
        return Route(paths.METRICS, self.protected, methods=["GET"], include_in_schema=False)


def _unauthorized(request: Request, detail: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="testgate"'}
    return replies.refusal(request.scope, 401, "unauthenticated", "Authentication required", detail, headers=headers)


class _Quiet(uvicorn.Server):
    """A second server in the same process: the main server owns the signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def listener(scraper: Scraper, listen: str) -> AsyncIterator[str]:
    """Serve ``/metrics`` unauthenticated on ``listen`` (host:port) while the context is open; yields its URL."""
    host, _, port = listen.rpartition(":")
    app = Starlette(routes=[Route(paths.METRICS, scraper.render, methods=["GET"])])
    config = uvicorn.Config(app, host=host.strip("[]"), port=int(port), log_config=None, lifespan="off")
    server = _Quiet(config)
    task = asyncio.create_task(server.serve())
    try:
        with anyio.fail_after(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError(f"the metrics listener on {listen} stopped at startup")
                await asyncio.sleep(0.01)  # uvicorn exposes readiness only as a flag
        log.info("metrics listener started", listen=listen)
        yield f"http://{listen}{paths.METRICS}"
    finally:
        server.should_exit = True
        await task
