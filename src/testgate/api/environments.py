"""Environments over REST, under ``/api/v1/organizations/{org}``; each route dispatches one operation.

    GET    /environments          list_environments (the ones you can reach)
    POST   /environments          create_environment ({slug, name}) -> 201, Location: the environment
    GET    /environments/{env}    get_environment
    PATCH  /environments/{env}    rename_environment ({name})

Every other route below ``/environments/{env}`` acts inside that environment (``api.routes``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from testgate.api.bodies import JSON_ONLY
from testgate.api.context import dispatch_as, org_call
from testgate.api.routing import org_router
from testgate.operations.context import Call
from testgate.operations.environments import CreateEnvironmentIn, EnvironmentInfo, EnvironmentList
from testgate.platform import links

ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422, 500, 503)

router = org_router(ERROR_STATUSES)

Caller = Annotated[Call, Depends(org_call)]
EnvSlug = Annotated[str, Path(description="the environment's slug", min_length=1, max_length=63)]


class EnvironmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200, description="the new display name (the slug never changes)")


@router.get("/environments", tags=["environments"], operation_id="list_environments", summary="List environments")
async def list_environments(request: Request, call: Caller) -> EnvironmentList:
    """The organization's environments you can reach, with your permission and their URLs."""
    return await dispatch_as(EnvironmentList, request, call, "environment.list", {})


@router.post(
    "/environments",
    status_code=201,
    tags=["environments"],
    operation_id="create_environment",
    summary="Create an environment",
    dependencies=[JSON_ONLY],
)
async def create_environment(
    request: Request, response: Response, call: Caller, body: CreateEnvironmentIn
) -> EnvironmentInfo:
    """Create an environment (owners and admins); members reach it once granted (PATCH /members/{user})."""
    created = await dispatch_as(
        EnvironmentInfo, request, call, "environment.create", body.model_dump(exclude_unset=True)
    )
    response.headers["Location"] = links.api_url("", call.organization, created.slug)
    return created


@router.get("/environments/{env}", tags=["environments"], operation_id="get_environment", summary="Get an environment")
async def get_environment(request: Request, call: Caller, env: EnvSlug) -> EnvironmentInfo:
    """One environment you can reach (any other answers 404)."""
    return await dispatch_as(EnvironmentInfo, request, call, "environment.get", {"slug": env})


@router.patch(
    "/environments/{env}",
    tags=["environments"],
    operation_id="rename_environment",
    summary="Rename an environment",
    dependencies=[JSON_ONLY],
)
async def rename_environment(request: Request, call: Caller, env: EnvSlug, body: EnvironmentPatch) -> EnvironmentInfo:
    """Change an environment's display name (owners and admins)."""
    return await dispatch_as(EnvironmentInfo, request, call, "environment.rename", {"slug": env, "name": body.name})
