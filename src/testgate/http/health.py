"""Probes: ``/healthz`` (liveness: the process answers; no dependency checked) and ``/readyz`` (readiness).

Readiness runs a trivial query on the database and pings Redis when rate limits are shared through it;
a failure answers 503 with which check failed, except Redis under ``fail_open``: the replica serves
without it, so it stays ready ("degraded"). Details stay coarse (``ok`` or ``unavailable``): the
probes are unauthenticated, and the reason is logged instead.
"""

from __future__ import annotations

import anyio
import structlog
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from testgate.http.panic import PlatformRef
from testgate.http.ratelimit import Limiter

log = structlog.get_logger("testgate.http")

CHECK_TIMEOUT = 2.0  # seconds per readiness check; a probe must answer well within its own timeout
NO_STORE = {"Cache-Control": "no-store"}


class Probes:
    """The liveness and readiness endpoints."""

    def __init__(self, platform: PlatformRef, limiter: Limiter) -> None:
        self.platform, self.limiter = platform, limiter

    def routes(self) -> list[Route]:
        """The two probe routes, for the application's router."""
        return [
            Route("/healthz", self.healthz, methods=["GET", "HEAD"], include_in_schema=False),
            Route("/readyz", self.readyz, methods=["GET", "HEAD"], include_in_schema=False),
        ]

    async def healthz(self, request: Request) -> JSONResponse:
        """The process is up and its event loop answers."""
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    async def readyz(self, request: Request) -> JSONResponse:
        """Every dependency this replica needs to serve answers."""
        checks = {"database": await self._database()}
        if self.limiter.shared:
            checks["redis"] = await self._redis()
        ready = checks["database"] == "ok"
        if checks.get("redis", "ok") != "ok" and self.limiter.settings.redis_failure == "fail_closed":
            ready = False  # every request would be refused anyway
        # With fail_open a replica serves without Redis: unready, every replica (they share one Redis) would
        # leave the load balancer at once, turning a Redis outage into a full one.
        status = ("ready" if all(v == "ok" for v in checks.values()) else "degraded") if ready else "unavailable"
        body = {"status": status, "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503, headers=NO_STORE)

    async def _database(self) -> str:
        platform = self.platform()
        if platform is None:
            return "starting"
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                async with platform.db.session() as session:
                    await session.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means not ready; the probe reports it, the log explains it
            log.warning("readiness: database unavailable", error=repr(exc))
            return "unavailable"
        return "ok"

    async def _redis(self) -> str:
        with anyio.move_on_after(CHECK_TIMEOUT):
            if await self.limiter.ping():
                return "ok"
        log.warning("readiness: redis unavailable")
        return "unavailable"
