"""API tokens and members over REST, under ``/api/v1/organizations/{org}``; each route dispatches one operation.

    GET    /tokens                list_tokens (status)
    POST   /tokens                create_token -> 201 with the secret, once
    DELETE /tokens/{id}           revoke_token
    POST   /tokens/{id}/rotate    rotate_token ({grace}) -> the new secret, once
    GET    /members               list_members (role)
    POST   /members               invite_member -> 201 (a person who has an account: tokens set no passwords
                                  and get no invitation links; `testgate member invite` does)
    PATCH  /members/{user}        set_member_role and/or grant_member ({role, environments}): one operation each
    DELETE /members/{user}        remove_member

``{user}`` is a user id or an email address. As everywhere in the API, the DELETE verb is the caller's
explicit confirmation of a destructive operation. Responses that carry a secret are never cached.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from testgate.api.bodies import JSON_ONLY, NO_BODY
from testgate.api.context import dispatch_as, explicitly_confirmed, org_call
from testgate.api.routing import ORG_PREFIX, org_router
from testgate.operations.access import CreateTokenIn, TokenInfo, TokenList, TokenSecret
from testgate.operations.context import Call
from testgate.operations.members import GrantName, Invited, InviteIn, MemberInfo, MemberList, Removed, RoleName

ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 422, 500, 503)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

router = org_router(ERROR_STATUSES)

Caller = Annotated[Call, Depends(org_call)]
TokenId = Annotated[str, Path(description="the token's id", min_length=1, max_length=26)]
UserRef = Annotated[str, Path(description="the member's user id or email address", min_length=1, max_length=320)]


def _location(call: Call, *segments: str) -> str:
    tail = "/".join(quote(s, safe="") for s in segments)
    return f"{ORG_PREFIX.format(org=quote(call.organization, safe=''))}/{tail}"


class RotateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace: str | None = Field(default=None, max_length=32, description="how long the old secret keeps working (PT1H)")


class MemberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: RoleName | None = None
    environments: dict[str, GrantName] | None = Field(
        default=None, description="environment slug -> read, run, write, admin, or none to remove"
    )

    @model_validator(mode="after")
    def _something(self) -> MemberPatch:
        if self.role is None and not self.environments:
            raise ValueError("give a role, environments, or both")
        granted = [slug for slug, permission in (self.environments or {}).items() if permission != "none"]
        if self.role in ("owner", "admin") and granted:
            # As for tokens: the grants would mean nothing now, and silently come back on a later demotion.
            raise ValueError(
                f"an {self.role} holds every environment; grant environments ({', '.join(sorted(granted))}) "
                "with role member, or remove them with none"
            )
        return self


@router.get("/tokens", tags=["tokens"], operation_id="list_tokens", summary="List API tokens")
async def list_tokens(
    request: Request, call: Caller, status: Annotated[str | None, Query(pattern="^(active|expired|revoked)$")] = None
) -> TokenList:
    """Your API tokens (owners and admins: every token of the organization), never their secrets."""
    return await dispatch_as(TokenList, request, call, "token.list", {"status": status} if status else {})


@router.post(
    "/tokens",
    status_code=201,
    tags=["tokens"],
    operation_id="create_token",
    summary="Create an API token",
    dependencies=[JSON_ONLY],
)
async def create_token(request: Request, response: Response, call: Caller, body: CreateTokenIn) -> TokenSecret:
    """Create an API token; the response carries its secret, this once."""
    created = await dispatch_as(TokenSecret, request, call, "token.create", body.model_dump(exclude_unset=True))
    response.headers.update(NO_STORE)
    response.headers["Location"] = _location(call, "tokens", created.token.id)
    return created


@router.delete(
    "/tokens/{id}", tags=["tokens"], operation_id="revoke_token", summary="Revoke an API token", dependencies=[NO_BODY]
)
async def revoke_token(request: Request, call: Caller, id: TokenId) -> TokenInfo:
    """Revoke an API token now; sending this request is the explicit confirmation."""
    call.confirm = explicitly_confirmed
    return await dispatch_as(TokenInfo, request, call, "token.revoke", {"id": id})


@router.post(
    "/tokens/{id}/rotate",
    tags=["tokens"],
    operation_id="rotate_token",
    summary="Rotate an API token",
    dependencies=[JSON_ONLY],
)
async def rotate_token(
    request: Request, response: Response, call: Caller, id: TokenId, body: Annotated[RotateBody | None, Body()] = None
) -> TokenSecret:
    """Give a token a new secret (returned this once); the old one works for the grace period."""
    args = {"id": id} | ({"grace": body.grace} if body and body.grace else {})
    rotated = await dispatch_as(TokenSecret, request, call, "token.rotate", args)
    response.headers.update(NO_STORE)
    return rotated


@router.get("/members", tags=["members"], operation_id="list_members", summary="List members")
async def list_members(
    request: Request, call: Caller, role: Annotated[str | None, Query(pattern="^(owner|admin|member)$")] = None
) -> MemberList:
    """The organization's members with their roles and environment permissions (owners and admins)."""
    return await dispatch_as(MemberList, request, call, "member.list", {"role": role} if role else {})


@router.post(
    "/members",
    status_code=201,
    tags=["members"],
    operation_id="invite_member",
    summary="Invite a member",
    dependencies=[JSON_ONLY],
)
async def invite_member(request: Request, response: Response, call: Caller, body: InviteIn) -> Invited:
    """Add a person who already has an account, with a role and environment permissions. A new person is
    invited with `testgate member invite`: an API token gets no password or invitation link (403)."""
    invited = await dispatch_as(Invited, request, call, "member.invite", body.model_dump(exclude_unset=True))
    response.headers.update(NO_STORE)
    response.headers["Location"] = _location(call, "members", invited.member.user_id)
    return invited


@router.patch(
    "/members/{user}",
    tags=["members"],
    operation_id="update_member",
    summary="Change a member",
    dependencies=[JSON_ONLY],
)
async def update_member(request: Request, call: Caller, user: UserRef, body: MemberPatch) -> MemberInfo:
    """Set a member's role and/or environment permissions: each is its own audited operation, role first."""
    member: MemberInfo | None = None
    if body.role is not None:
        member = await dispatch_as(MemberInfo, request, call, "member.set_role", {"user": user, "role": body.role})
    if body.environments:
        args = {"user": user, "environments": body.environments}
        member = await dispatch_as(MemberInfo, request, call, "member.grant", args)
    assert member is not None, "the body names a role or environments"
    return member


@router.delete(
    "/members/{user}", tags=["members"], operation_id="remove_member", summary="Remove a member", dependencies=[NO_BODY]
)
async def remove_member(request: Request, call: Caller, user: UserRef) -> Removed:
    """Remove a member and revoke their API tokens; sending this request is the explicit confirmation."""
    call.confirm = explicitly_confirmed
    return await dispatch_as(Removed, request, call, "member.remove", {"user": user})
