"""API token operations: create, list, revoke, rotate (member operations are in ``operations.members``).

They need no environment permission (``Permission.NONE``): any member of the organization may call them,
and the handlers bound what each caller gets. A token never holds more than the person creating it;
members see and manage their own tokens, owners and admins all of them; changing tokens needs a session
that may write (an OAuth scope below ``testgate:write`` cannot). Tokens mint no tokens: creating and
rotating need a person (CLI, console or OAuth), so revoking a leaked token ends it. Nor are secrets
handed to MCP clients, so an agent cannot turn its short-lived access into a long-lived token.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from sqlalchemy import false, or_, select

from testgate.access import tokens
from testgate.access.principal import Permission, Principal, Role
from testgate.errors import NotFound, PermissionDenied
from testgate.operations.context import OpContext
from testgate.operations.registry import Confirmation, operation
from testgate.platform import tenancy
from testgate.store.base import utcnow
from testgate.store.tenancy import Environment
from testgate.store.tokens import ApiTokenRow

Slug = Annotated[str, StringConstraints(min_length=1, max_length=63)]
PermissionName = Literal["read", "run", "write", "admin"]
NEVER_EXPIRES = "this token never expires; prefer an expiry (e.g. P30D) and rotate it"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenInfo(BaseModel):
    """A token as listed: never its secret."""

    id: str
    name: str
    role: str = Field(description="admin (every environment) or member (grants)")
    grants: dict[str, str] = Field(description="environment slug -> read, run, write or admin")
    labels: dict[str, str]
    prefix: str = Field(description="the secret's first characters, to recognise it")
    status: str = Field(description="active, expired or revoked")
    created_at: datetime
    created_by: str | None = Field(description="the creator's user id (None: the local owner)")
    creator: str
    expires_at: datetime | None
    last_used_at: datetime | None
    last_used_from: str | None
    revoked_at: datetime | None
    rotated_at: datetime | None
    previous_valid_until: datetime | None = Field(description="the rotated-out secret works until then")

    @classmethod
    def of(cls, row: ApiTokenRow, slugs: dict[str, str]) -> TokenInfo:
        now = utcnow()
        status = tokens.status(row, now)
        until = row.previous_valid_until
        # A revoked or expired token's old secret works no more than its new one.
        grace = until if status == "active" and until is not None and until > now else None
        return cls(
            id=row.id,
            name=row.name,
            role=row.role,
            grants={slugs.get(env_id, env_id): perm for env_id, perm in row.grants.items()},
            labels=row.labels,
            prefix=row.prefix,
            status=status,
            created_at=row.created_at,
            created_by=row.created_by,
            creator=row.created_by_name,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            last_used_from=row.last_used_from,
            revoked_at=row.revoked_at,
            rotated_at=row.rotated_at,
            previous_valid_until=grace,
        )


class TokenList(BaseModel):
    tokens: list[TokenInfo]


class TokenSecret(BaseModel):
    token: TokenInfo
    secret: str = Field(description="shown only this once: store it now")
    warnings: list[str] = Field(default_factory=list)


def _check_expiry(value: str | None) -> str | None:
    if value is not None:
        tokens.parse_expiry(value, utcnow())
    return value


class CreateTokenIn(_In):
    name: str = Field(min_length=1, max_length=100, description="what the token is for, e.g. ci")
    role: Literal["admin", "member"] = Field(default="member", description="admin: every environment")
    environments: dict[Slug, PermissionName] = Field(
        default_factory=dict, max_length=100, description="member tokens: environment slug -> permission"
    )
    labels: dict[
        Annotated[str, StringConstraints(max_length=63)], Annotated[str, StringConstraints(max_length=200)]
    ] = Field(default_factory=dict, max_length=20)
    expires: str | None = Field(
        default=None,
        max_length=64,
        description="an ISO 8601 duration (P30D, PT12H, P1W, P1DT2H) or a date/time (2027-01-01); none: never",
    )

    _expiry = field_validator("expires")(_check_expiry)

    @model_validator(mode="after")
    def _grants_fit_role(self) -> CreateTokenIn:
        if self.role == "admin" and self.environments:
            raise ValueError("an admin token holds every environment; give environments only to member tokens")
        return self


class ListTokensIn(_In):
    status: Literal["active", "expired", "revoked"] | None = None


class TokenRef(_In):
    id: str = Field(min_length=1, max_length=26, description="the token's id (see list_tokens)")


class RotateTokenIn(TokenRef):
    grace: str | None = Field(
        default=None, max_length=32, description="how long the old secret keeps working, at most P7D (e.g. PT1H)"
    )

    @field_validator("grace")
    @classmethod
    def _bounded(cls, value: str | None) -> str | None:
        if value is not None:
            tokens.parse_grace(value)
        return value


async def _environments(ctx: OpContext) -> dict[str, Environment]:
    return {e.slug: e for e in await tenancy.list_environments(ctx.db, ctx.organization)}


async def _slugs(ctx: OpContext) -> dict[str, str]:
    return {e.id: e.slug for e in await tenancy.list_environments(ctx.db, ctx.organization)}


async def _resolve(ctx: OpContext, wanted: dict[str, str]) -> tuple[dict[str, Permission], dict[str, str]]:
    """Environment slugs -> ids, hiding environments the caller cannot see; also every env id -> slug."""
    envs = await _environments(ctx)
    visible = {s for s, e in envs.items() if ctx.principal.permission_in(e.id) > Permission.NONE}
    missing = sorted(set(wanted) - visible)
    if missing:
        raise NotFound(f"environment(s) {', '.join(missing)} not found in organization {ctx.organization.slug!r}")
    return {envs[s].id: Permission.parse(p) for s, p in wanted.items()}, {e.id: s for s, e in envs.items()}


async def _token(ctx: OpContext, token_id: str) -> ApiTokenRow:
    row = await ctx.db.get(ApiTokenRow, token_id)
    if row is None or row.organization_id != ctx.organization.id:
        raise NotFound(f"no token {token_id!r} in organization {ctx.organization.slug!r}")
    return row


MCP_TRANSPORTS = ("mcp-http", "mcp-sse", "mcp-stdio")


def _check_minting(ctx: OpContext) -> str | None:
    """The new token's creator; ``PermissionDenied`` for tokens, read-only sessions and MCP clients."""
    creator = tokens.creator_of(ctx.principal)
    _check_writes(ctx.principal)
    if ctx.call.transport in MCP_TRANSPORTS:
        raise PermissionDenied("token secrets are not handed to MCP clients; use the CLI, the console or the REST API")
    return creator


def _check_writes(principal: Principal) -> None:
    if principal.cap < Permission.WRITE:
        raise PermissionDenied(
            f"changing API tokens needs write access; this session is limited to {principal.cap.label}",
            details={"required": Permission.WRITE.label, "held": principal.cap.label},
        )


def _check_manage(principal: Principal, row: ApiTokenRow) -> None:
    """Owners and admins manage every token; members their own. An API token acting for its creator must
    itself hold write somewhere, unless it acts on itself: a leaked read-only token must not be able to
    revoke the creator's CI tokens."""
    _check_writes(principal)
    itself = principal.kind == "api_token" and row.id == principal.id  # the local owner's tokens have no creator
    mine = row.created_by is not None and row.created_by == tokens.person_of(principal)
    if not (principal.is_org_admin or itself or mine):
        raise PermissionDenied("only owners, admins and the token's creator can manage it")
    if _read_only_token(principal) and row.id != principal.id:
        raise PermissionDenied(
            f"this API token holds {_highest(principal).label} at most; managing other tokens needs a token with "
            "write access, or the creator themselves (CLI, console or OAuth)",
            details={"required": Permission.WRITE.label, "held": _highest(principal).label},
        )


def _read_only_token(principal: Principal) -> bool:
    """An API token that may not change anything anywhere (it reads, or runs at most)."""
    return principal.kind == "api_token" and _highest(principal) < Permission.WRITE


def _highest(principal: Principal) -> Permission:
    """The most a principal may do in any environment."""
    if principal.is_org_admin:
        return Permission.ADMIN
    return min(max(principal.grants.values(), default=Permission.NONE), principal.cap)


@operation(
    "token.create",
    tool="create_token",
    title="Create an API token",
    permission=Permission.NONE,
    input=CreateTokenIn,
    output=TokenSecret,
    scope="organization",
    agent_tool=False,
)
async def create_token(ctx: OpContext, args: CreateTokenIn) -> TokenSecret:
    """Create an API token: admin (every environment; owners and admins only) or member with a permission
    per environment, never more than you hold. The secret is returned once; only its hash is kept."""
    creator = _check_minting(ctx)
    grants, slugs = await _resolve(ctx, dict(args.environments))
    role = Role(args.role)
    tokens.check_within(ctx.principal, role, grants, slugs)
    issued = await tokens.issue(
        ctx.db,
        organization_id=ctx.organization.id,
        name=args.name,
        role=role,
        grants=grants,
        created_by=creator,
        created_by_name=ctx.principal.name,
        expires_at=tokens.parse_expiry(args.expires, utcnow()) if args.expires else None,
        labels=args.labels,
    )
    ctx.touch("api_token", issued.row.id, issued.row.name)
    warnings = [] if issued.row.expires_at else [NEVER_EXPIRES]
    return TokenSecret(token=TokenInfo.of(issued.row, slugs), secret=issued.secret, warnings=warnings)


@operation(
    "token.list",
    tool="list_tokens",
    title="List API tokens",
    permission=Permission.NONE,
    input=ListTokensIn,
    output=TokenList,
    scope="organization",
    read_only=True,
    idempotent=True,
)
async def list_tokens(ctx: OpContext, args: ListTokensIn) -> TokenList:
    """List API tokens (never their secrets): yours, or every token of the organization for owners and
    admins, with role, grants, labels, expiry, last use (time and address) and status. A token without
    write access anywhere sees only itself."""
    principal = ctx.principal
    query = select(ApiTokenRow).where(ApiTokenRow.organization_id == ctx.organization.id)
    itself = ApiTokenRow.id == principal.id if principal.kind == "api_token" else false()
    if _read_only_token(principal):
        query = query.where(itself)  # it may not manage the others: nor see them
    elif not principal.is_org_admin:
        # A token made by the local owner (the CLI without a login) has no creator: it still sees itself.
        query = query.where(or_(ApiTokenRow.created_by == (tokens.person_of(principal) or ""), itself))
    rows = await ctx.db.scalars(query.order_by(ApiTokenRow.created_at, ApiTokenRow.id))
    slugs = await _slugs(ctx)
    infos = [TokenInfo.of(r, slugs) for r in rows]
    return TokenList(tokens=[i for i in infos if args.status in (None, i.status)])


async def _confirm_revoke(ctx: OpContext, args: TokenRef) -> Confirmation:
    row = await _token(ctx, args.id)
    _check_manage(ctx.principal, row)
    return Confirmation(f"Revoke token '{row.name}' ({row.id})? Anything using it stops working at once.", row.id)


@operation(
    "token.revoke",
    tool="revoke_token",
    title="Revoke an API token",
    permission=Permission.NONE,
    input=TokenRef,
    output=TokenInfo,
    scope="organization",
    destructive=True,
    idempotent=True,
    confirm=_confirm_revoke,
)
async def revoke_token(ctx: OpContext, args: TokenRef) -> TokenInfo:
    """Revoke an API token now (also a rotated-out secret still in its grace period). Destructive: the
    user is asked to confirm first. Members revoke their own tokens; owners and admins any."""
    row = await _token(ctx, str(ctx.confirmed or args.id))
    _check_manage(ctx.principal, row)
    tokens.revoke(row)
    ctx.touch("api_token", row.id, row.name)
    return TokenInfo.of(row, await _slugs(ctx))


@operation(
    "token.rotate",
    tool="rotate_token",
    title="Rotate an API token",
    permission=Permission.NONE,
    input=RotateTokenIn,
    output=TokenSecret,
    scope="organization",
    agent_tool=False,
)
async def rotate_token(ctx: OpContext, args: RotateTokenIn) -> TokenSecret:
    """Give an API token a new secret (returned once); the old one keeps working for the grace period
    (none by default, at most seven days). Only the token's creator can rotate it."""
    creator = _check_minting(ctx)
    row = await _token(ctx, args.id)
    if ctx.principal.kind != "local" and row.created_by != creator:
        raise PermissionDenied("only the token's creator can rotate it; owners and admins can revoke it")
    grace = tokens.parse_grace(args.grace) if args.grace else timedelta(0)
    secret = tokens.rotate(row, grace)
    ctx.touch("api_token", row.id, row.name)
    info = TokenInfo.of(row, await _slugs(ctx))
    until = row.previous_valid_until
    note = f"the previous secret works until {until:%Y-%m-%d %H:%M:%S} UTC" if grace else "the previous secret is void"
    return TokenSecret(token=info, secret=secret, warnings=[note])
