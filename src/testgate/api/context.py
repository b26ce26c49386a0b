"""What every REST handler needs: the platform, and the ``Call`` describing who asked, from where and how."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar, cast
from urllib.parse import quote

from fastapi import Path, Request
from pydantic import BaseModel

from testgate.access.principal import Principal
from testgate.errors import Unauthenticated
from testgate.http.origin import origin_of
from testgate.operations.context import Call, ConfirmOutcome
from testgate.operations.dispatch import dispatch
from testgate.platform.context import Platform

M = TypeVar("M", bound=BaseModel)

PREFIX = "/api/v1/organizations/{org}/environments/{env}"

Org = Annotated[str, Path(description="the organization's id (slug)", max_length=63)]
Env = Annotated[str, Path(description="the environment's id (slug)", max_length=63)]


def platform_of(request: Request) -> Platform:
    """The platform the application serves."""
    return cast(Platform, request.app.state.platform)


def client_address(request: Request) -> str | None:
    """The peer's address as the server saw it (a proxy's, unless the server trusts forwarded headers)."""
    return request.client.host if request.client else None


async def explicitly_confirmed(message: str) -> ConfirmOutcome:
    """REST's confirmer: the DELETE verb (or a bulk-delete POST) is itself the caller's explicit intent."""
    return "explicit"


async def rest_call(request: Request, org: Org, env: Env) -> Call:
    """The ``Call`` for an authenticated REST request (the route class has put the principal on it)."""
    return _call(request, org, env)


async def org_call(request: Request, org: Org) -> Call:
    """The ``Call`` of an authenticated organization-wide REST request."""
    return _call(request, org, None)


def _call(request: Request, org: str, env: str | None) -> Call:
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise Unauthenticated("this endpoint needs an Authorization: Bearer <token> header")
    return Call(principal=principal, organization=org, environment=env, transport="rest", **origin_of(request.scope))


def env_path(call: Call, *segments: str) -> str:
    """An absolute API path under the call's environment, each segment percent-encoded."""
    tail = "/".join(quote(s, safe="") for s in segments)
    base = PREFIX.format(org=quote(call.organization, safe=""), env=quote(call.environment or "", safe=""))
    return f"{base}/{tail}"


async def dispatch_as(model: type[M], request: Request, call: Call, name: str, args: Mapping[str, Any]) -> M:
    """Dispatch operation ``name`` and return its output, known to be a ``model``."""
    output = await dispatch(platform_of(request), call, name, args)
    if not isinstance(output, model):
        raise TypeError(f"{name} returned {type(output).__name__}, not {model.__name__}")
    return output
