"""The API's routers: every route under ``/api/v1/organizations/{org}/environments/{env}`` (``env_router``)
and the organization-wide ones under ``/api/v1/organizations/{org}`` (``org_router``: tokens, members, audit).

Their route classes authenticate the caller before the body is read or validated (an anonymous caller
learns nothing about a route but that it needs a token), then bound the body it may read.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response, Security
from fastapi.routing import APIRoute

from testgate.api import problems
from testgate.api.auth import bearer_scheme, principal_from_request
from testgate.api.bodies import bounded
from testgate.api.context import PREFIX, platform_of

ORG_PREFIX = "/api/v1/organizations/{org}"
ORG_MAX_BODY = 64 * 1024  # organization-wide routes take small JSON bodies (a token, a member) or none

# Multipart boundaries and part headers around an upload's files.
UPLOAD_OVERHEAD = 256 * 1024
UPLOAD_PATH = "/results"  # the one environment route that takes result files (``upload_results``)
# Every error status an environment route may answer, so clients and schema-driven tools know them all.
ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422, 500, 503)


def body_limit(request: Request, *, uploads: bool) -> int:
    """The most an environment route reads: the largest upload the settings allow on the upload route, else
    the ordinary body limit (or a workflow definition's, should that be set larger)."""
    settings = platform_of(request).settings
    if uploads:
        return settings.max_upload_bytes + UPLOAD_OVERHEAD
    return max(settings.http.max_body_bytes, settings.max_spec_bytes)


class EnvironmentRoute(APIRoute):
    """A route that authenticates its caller first (principal on ``request.state``), then bounds the body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        uploads = self.path.endswith(UPLOAD_PATH)

        async def authenticated(request: Request) -> Response:
            request.state.principal = await principal_from_request(request)
            return await handler(bounded(request, body_limit(request, uploads=uploads)))

        return authenticated


def env_router(**options: Any) -> APIRouter:
    """A router for routes under the environment prefix, all authenticated, errors documented."""
    return APIRouter(
        prefix=PREFIX,
        route_class=EnvironmentRoute,
        dependencies=[Security(bearer_scheme)],
        responses=problems.documented(*ERROR_STATUSES),
        **options,
    )


class OrganizationRoute(APIRoute):
    """An organization-wide route: authenticates its caller first (principal on ``request.state``), then
    bounds the body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            request.state.principal = await principal_from_request(request)
            return await handler(bounded(request, ORG_MAX_BODY))

        return authenticated


def org_router(error_statuses: tuple[int, ...], **options: Any) -> APIRouter:
    """A router for routes under the organization prefix, all authenticated, ``error_statuses`` documented."""
    return APIRouter(
        prefix=ORG_PREFIX,
        route_class=OrganizationRoute,
        dependencies=[Security(bearer_scheme)],
        responses=problems.documented(*error_statuses),
        **options,
    )
