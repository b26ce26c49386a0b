"""Environment operations: list, get, create, rename.

An environment is where workflows, executions and test cases live, and what the hosted MCP endpoint's
path names. Every member of the organization may list the environments they can reach; only owners and
admins create or rename one. A new environment is reachable at once by owners and admins (their role
holds every environment); members need a grant (``grant_member``) and tokens a new token. Its slug is
fixed for good: it is in every URL, and OAuth tokens are issued for the environment's MCP URL.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from testgate.access.principal import Permission
from testgate.errors import Conflict, NotFound
from testgate.ids import is_slug
from testgate.operations.access import Slug
from testgate.operations.context import OpContext
from testgate.operations.registry import operation
from testgate.platform import links, tenancy
from testgate.store.tenancy import Environment


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvironmentInfo(BaseModel):
    slug: str = Field(description="the environment's id in URLs and tool scopes")
    name: str = Field(description="display name")
    created_at: datetime
    permission: str = Field(description="what you hold here: read, run, write or admin")
    mcp_url: str = Field(description="the hosted MCP endpoint for this environment")
    api_url: str = Field(description="the REST API's base for this environment")
    console_url: str = Field(description="the web console's page for this environment")

    @classmethod
    def of(cls, ctx: OpContext, env: Environment, permission: Permission) -> EnvironmentInfo:
        base, org = ctx.platform.settings.base_url, ctx.organization.slug
        return cls(
            slug=env.slug,
            name=env.name,
            created_at=env.created_at,
            permission=permission.label,
            mcp_url=links.mcp_url(base, org, env.slug),
            api_url=links.api_url(base, org, env.slug),
            console_url=links.console_url(base, org, env.slug, "executions"),
        )


class EnvironmentList(BaseModel):
    environments: list[EnvironmentInfo]


class ListEnvironmentsIn(_In):
    pass


def _display_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError("a name needs at least one character that is not a space")
    return value


class CreateEnvironmentIn(_In):
    slug: Slug = Field(description="the new environment's id: lowercase letters, digits and '-', e.g. staging")
    name: str | None = Field(default=None, max_length=200, description="display name (default: the slug)")

    _name = field_validator("name")(_display_name)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not is_slug(value):
            raise ValueError("must be a slug: lowercase letters, digits and inner '-', at most 63 characters")
        return value


class EnvironmentRef(_In):
    slug: Slug = Field(description="the environment's slug (see list_environments)")


class RenameEnvironmentIn(EnvironmentRef):
    name: str = Field(max_length=200, description="the new display name")

    _name = field_validator("name")(_display_name)


@operation(
    "environment.list",
    tool="list_environments",
    title="List environments",
    permission=Permission.NONE,
    input=ListEnvironmentsIn,
    output=EnvironmentList,
    scope="organization",
    read_only=True,
    idempotent=True,
)
async def list_environments(ctx: OpContext, args: ListEnvironmentsIn) -> EnvironmentList:
    """List the organization's environments you can reach, with your permission in each and its MCP, REST
    and console URLs. Use it to find another environment's MCP endpoint: a connection is fixed to one."""
    found = []
    for env in await tenancy.list_environments(ctx.db, ctx.organization):
        held = ctx.principal.permission_in(env.id)
        if held > Permission.NONE:
            found.append(EnvironmentInfo.of(ctx, env, held))
    return EnvironmentList(environments=found)


@operation(
    "environment.get",
    tool="get_environment",
    title="Get an environment",
    permission=Permission.NONE,
    input=EnvironmentRef,
    output=EnvironmentInfo,
    scope="organization",
    read_only=True,
    idempotent=True,
)
async def get_environment(ctx: OpContext, args: EnvironmentRef) -> EnvironmentInfo:
    """Get one environment you can reach: its name, your permission there, and its MCP, REST and console
    URLs."""
    env = await _reachable(ctx, args.slug)
    ctx.touch("environment", env.id, env.slug)
    return EnvironmentInfo.of(ctx, env, ctx.principal.permission_in(env.id))


async def _reachable(ctx: OpContext, slug: str) -> Environment:
    """The environment named ``slug`` if the caller holds anything there; else ``NotFound``, as if absent."""
    env = await tenancy.environment_by_slug(ctx.db, ctx.organization, slug)
    if ctx.principal.permission_in(env.id) == Permission.NONE:
        raise NotFound(f"environment {slug!r} not found in organization {ctx.organization.slug!r}")
    return env


@operation(
    "environment.create",
    tool="create_environment",
    title="Create an environment",
    permission=Permission.ADMIN,
    input=CreateEnvironmentIn,
    output=EnvironmentInfo,
    scope="organization",
)
async def create_environment(ctx: OpContext, args: CreateEnvironmentIn) -> EnvironmentInfo:
    """Create an environment (e.g. staging) with its own workflows, executions and test cases. Owners and
    admins reach it at once; give members access with grant_member. The slug is permanent."""
    clash = await ctx.db.scalar(
        select(Environment.id).where(Environment.organization_id == ctx.organization.id, Environment.slug == args.slug)
    )
    if clash is not None:
        raise Conflict(f"environment {args.slug!r} already exists in organization {ctx.organization.slug!r}")
    env = await tenancy.create_environment(ctx.db, ctx.organization, args.slug, args.name)
    ctx.touch("environment", env.id, env.slug)
    return EnvironmentInfo.of(ctx, env, ctx.principal.permission_in(env.id))


@operation(
    "environment.rename",
    tool="rename_environment",
    title="Rename an environment",
    permission=Permission.ADMIN,
    input=RenameEnvironmentIn,
    output=EnvironmentInfo,
    scope="organization",
    idempotent=True,
)
async def rename_environment(ctx: OpContext, args: RenameEnvironmentIn) -> EnvironmentInfo:
    """Change an environment's display name. Its slug, and so every URL and token that names it, stays."""
    env = await tenancy.environment_by_slug(ctx.db, ctx.organization, args.slug)
    env.name = args.name
    await ctx.db.flush()
    ctx.touch("environment", env.id, env.slug)
    return EnvironmentInfo.of(ctx, env, ctx.principal.permission_in(env.id))
