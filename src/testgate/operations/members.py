"""Member operations: list, invite, set a role, grant environment permissions, remove. Owners and admins only.

Only an owner can make, demote or remove an owner, and the organization always keeps an owner. A
demotion reaches the member's API tokens at their next use; a removal revokes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from testgate.access import members
from testgate.access.principal import Permission, Role
from testgate.errors import NotFound, PermissionDenied
from testgate.operations.access import MCP_TRANSPORTS, PermissionName, Slug
from testgate.operations.context import OpContext
from testgate.operations.registry import Confirmation, operation
from testgate.platform import tenancy

RoleName = Literal["owner", "admin", "member"]
GrantName = Literal["read", "run", "write", "admin", "none"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberInfo(BaseModel):
    user_id: str
    email: str
    name: str
    role: str = Field(description="owner, admin or member")
    grants: dict[str, str] = Field(description="environment slug -> read, run, write or admin")
    joined_at: datetime
    invitation_pending: bool = Field(description="the person has not set a password yet")
    disabled: bool

    @classmethod
    def of(cls, member: members.Member, slugs: dict[str, str]) -> MemberInfo:
        return cls(
            user_id=member.user.id,
            email=member.user.email,
            name=member.user.name,
            role=member.role.value,
            grants={
                slugs.get(e, e): p.label for e, p in sorted(member.grants.items(), key=lambda i: slugs.get(i[0], ""))
            },
            joined_at=member.membership.created_at,
            invitation_pending=member.user.password_hash is None,
            disabled=member.user.disabled,
        )


class MemberList(BaseModel):
    members: list[MemberInfo]


class ListMembersIn(_In):
    role: RoleName | None = Field(default=None, description="only members with this role")


class InviteIn(_In):
    email: str = Field(min_length=3, max_length=320)
    name: str = Field(default="", max_length=200, description="display name (default: the address's local part)")
    role: RoleName = "member"
    environments: dict[Slug, PermissionName] = Field(
        default_factory=dict, max_length=100, description="environment slug -> permission (for members)"
    )
    password: str | None = Field(
        default=None,
        max_length=1024,
        description="an initial password (12+ characters); without one, a one-time invitation link is returned",
    )


class Invited(BaseModel):
    member: MemberInfo
    existing_user: bool = Field(description="the person already had an account (it keeps its password)")
    invite_url: str | None = Field(
        description="one-time link to set a password, shown only this once; none for an account that has a "
        "password or belongs to another organization (the person signs in as they already do)"
    )
    invite_expires_at: datetime | None


class UserRef(_In):
    user: str = Field(min_length=1, max_length=320, description="the member's user id or email address")


class SetRoleIn(UserRef):
    role: RoleName


class GrantIn(UserRef):
    environments: dict[Slug, GrantName] = Field(
        min_length=1, max_length=100, description="environment slug -> read, run, write, admin, or none to remove"
    )


class Removed(BaseModel):
    member: MemberInfo
    revoked_tokens: int = Field(description="API tokens the member had created here, now revoked")


async def _slugs(ctx: OpContext) -> dict[str, str]:
    return {e.id: e.slug for e in await tenancy.list_environments(ctx.db, ctx.organization)}


async def _grants(ctx: OpContext, wanted: dict[str, str]) -> tuple[dict[str, Permission], dict[str, str]]:
    """Environment slugs -> ids (``NotFound`` names unknown ones); also every env id -> slug."""
    slugs = await _slugs(ctx)
    ids = {s: e for e, s in slugs.items()}
    missing = sorted(set(wanted) - set(ids))
    if missing:
        raise NotFound(f"environment(s) {', '.join(missing)} not found in organization {ctx.organization.slug!r}")
    return {ids[s]: Permission.NONE if p == "none" else Permission.parse(p) for s, p in wanted.items()}, slugs


@operation(
    "member.list",
    tool="list_members",
    title="List members",
    permission=Permission.ADMIN,
    input=ListMembersIn,
    output=MemberList,
    scope="organization",
    read_only=True,
    idempotent=True,
)
async def list_members(ctx: OpContext, args: ListMembersIn) -> MemberList:
    """List the organization's members with their role and their permission in each environment."""
    slugs = await _slugs(ctx)
    found = await members.list_members(ctx.db, ctx.organization)
    return MemberList(members=[MemberInfo.of(m, slugs) for m in found if args.role in (None, m.role.value)])


def _check_credential(ctx: OpContext, credential: str | None) -> None:
    """``PermissionDenied`` if the call would set or hand out ``credential`` ("a password", "an invitation
    link") for an API token or an MCP client (the refusal rolls the whole call back).

    Tokens mint no credentials: an account a token set up would outlive the token's revocation, as a
    token minted by a token would. Nor do secrets go into a model's context. So new accounts are invited
    by a person with the CLI (``testgate member invite``), which runs as the local owner.
    """
    if credential is None:
        return
    if ctx.principal.kind == "api_token":
        raise PermissionDenied(
            f"API tokens cannot give a person {credential}: that is a credential, and tokens mint none. A "
            "token adds only people who already have an account; invite new people with `testgate member invite`"
        )
    if ctx.call.transport in MCP_TRANSPORTS:
        raise PermissionDenied(
            f"{credential} is not handed to MCP clients; invite new people with `testgate member invite`"
        )


@operation(
    "member.invite",
    tool="invite_member",
    title="Invite a member",
    permission=Permission.ADMIN,
    input=InviteIn,
    output=Invited,
    scope="organization",
    redact_arguments=("password",),
)
async def invite_member(ctx: OpContext, args: InviteIn) -> Invited:
    """Add a person to the organization with a role and environment permissions. A new account gets the
    given initial password, or a one-time invitation link (valid seven days, shown once) to set one. Only
    owners can add owners. API tokens and MCP clients add only people who already have an account: a
    password or an invitation link is a credential, and the CLI (testgate member invite) hands those out."""
    _check_credential(ctx, "a password" if args.password is not None else None)
    grants, slugs = await _grants(ctx, dict(args.environments))
    added = await members.add(
        ctx.db,
        ctx.organization,
        ctx.principal,
        email=args.email,
        name=args.name,
        role=Role(args.role),
        grants=grants,
        password=args.password,
    )
    _check_credential(ctx, "an invitation link" if added.invite is not None else None)
    user = added.member.user
    ctx.touch("user", user.id, user.email)
    base = ctx.platform.settings.base_url
    url = f"{base}/invite?token={quote(added.invite, safe='')}" if added.invite else None
    return Invited(
        member=MemberInfo.of(added.member, slugs),
        existing_user=added.existing_user,
        invite_url=url,
        invite_expires_at=user.invite_expires_at if added.invite else None,
    )


@operation(
    "member.set_role",
    tool="set_member_role",
    title="Set a member's role",
    permission=Permission.ADMIN,
    input=SetRoleIn,
    output=MemberInfo,
    scope="organization",
    idempotent=True,
)
async def set_role(ctx: OpContext, args: SetRoleIn) -> MemberInfo:
    """Make a member an owner, admin or member. Their API tokens follow at once. Only owners can make,
    demote or remove owners, and the last owner cannot be demoted."""
    member = await members.set_role(ctx.db, ctx.organization, ctx.principal, args.user, Role(args.role))
    ctx.touch("user", member.user.id, member.user.email)
    return MemberInfo.of(member, await _slugs(ctx))


@operation(
    "member.grant",
    tool="grant_member",
    title="Set a member's environment permissions",
    permission=Permission.ADMIN,
    input=GrantIn,
    output=MemberInfo,
    scope="organization",
    idempotent=True,
)
async def grant(ctx: OpContext, args: GrantIn) -> MemberInfo:
    """Set a member's permission (read, run, write or admin) in one or more environments, or remove it
    with none. Their API tokens follow at once."""
    grants, slugs = await _grants(ctx, dict(args.environments))
    member = await members.set_grants(ctx.db, ctx.organization, ctx.principal, args.user, grants)
    ctx.touch("user", member.user.id, member.user.email)
    return MemberInfo.of(member, slugs)


async def _confirm_remove(ctx: OpContext, args: UserRef) -> Confirmation:
    member = await members.find(ctx.db, ctx.organization, args.user)
    return Confirmation(
        f"Remove {member.user.email} ({member.role.value}) from '{ctx.organization.slug}' and revoke their API tokens?",
        member.user.id,
    )


@operation(
    "member.remove",
    tool="remove_member",
    title="Remove a member",
    permission=Permission.ADMIN,
    input=UserRef,
    output=Removed,
    scope="organization",
    destructive=True,
    confirm=_confirm_remove,
)
async def remove(ctx: OpContext, args: UserRef) -> Removed:
    """Remove a member from the organization and revoke the API tokens they created here. Destructive:
    the user is asked to confirm first. The last owner cannot be removed."""
    member, revoked = await members.remove(ctx.db, ctx.organization, ctx.principal, str(ctx.confirmed or args.user))
    ctx.touch("user", member.user.id, member.user.email)
    return Removed(member=MemberInfo.of(member, await _slugs(ctx)), revoked_tokens=revoked)
