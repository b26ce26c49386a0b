"""Organization members: their role (owner, admin, member) and their permission in each environment.

Every change obeys two rules:

- only an owner can make someone an owner, or demote or remove an owner (an admin token never counts
  as an owner);
- the organization keeps at least one owner: demoting or removing the last one is a ``Conflict``.

Removing a member also revokes the API tokens they created in the organization. A token is bounded by
its creator's current role and grants at every use, so a demotion takes effect on their tokens at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access import tokens, users
from testgate.access.principal import Permission, Principal, Role
from testgate.errors import Conflict, NotFound, PermissionDenied
from testgate.store.base import utcnow
from testgate.store.oauth import Consent, RefreshToken, RevokedAccessToken
from testgate.store.tenancy import Environment, EnvironmentGrant, Membership, Organization, User
from testgate.store.tokens import ApiTokenRow


@dataclass(frozen=True)
class Member:
    """A user, their role in the organization and their grants by environment id."""

    user: User
    membership: Membership
    grants: dict[str, Permission]

    @property
    def role(self) -> Role:
        return Role(self.membership.role)


@dataclass(frozen=True)
class Added:
    member: Member
    invite: str | None  # the one-time invitation secret, when the user has no password yet
    existing_user: bool


def is_owner(principal: Principal) -> bool:
    """The caller is an owner with nothing capping it (an admin token, even an owner's, is not)."""
    return principal.role == Role.OWNER and principal.cap >= Permission.ADMIN


def _check_owner_change(actor: Principal, *roles: Role) -> None:
    if Role.OWNER in roles and not is_owner(actor):
        raise PermissionDenied("only an owner can make, demote or remove an owner", details={"required": "owner"})


async def _environment_ids(session: AsyncSession, org: Organization) -> list[str]:
    return list(await session.scalars(select(Environment.id).where(Environment.organization_id == org.id)))


async def _grants(session: AsyncSession, org: Organization, user_ids: list[str]) -> dict[str, dict[str, Permission]]:
    rows = await session.scalars(
        select(EnvironmentGrant)
        .join(Environment, Environment.id == EnvironmentGrant.environment_id)
        .where(Environment.organization_id == org.id, EnvironmentGrant.user_id.in_(user_ids))
    )
    out: dict[str, dict[str, Permission]] = {uid: {} for uid in user_ids}
    for row in rows:
        out[row.user_id][row.environment_id] = Permission.parse(row.permission)
    return out


async def list_members(session: AsyncSession, org: Organization) -> list[Member]:
    """Everyone in the organization, by email address."""
    rows = (
        await session.execute(
            select(User, Membership)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.organization_id == org.id)
            .order_by(User.email)
        )
    ).all()
    grants = await _grants(session, org, [user.id for user, _ in rows])
    return [Member(user, membership, grants[user.id]) for user, membership in rows]


async def find(session: AsyncSession, org: Organization, ref: str) -> Member:
    """The member named by user id or email address; ``NotFound`` if they are not in the organization."""
    match = User.email == ref.strip().lower() if "@" in ref else User.id == ref
    row = (
        await session.execute(
            select(User, Membership)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.organization_id == org.id, match)
        )
    ).first()
    if row is None:
        raise NotFound(f"no member {ref!r} in organization {org.slug!r}")
    user, membership = row
    return Member(user, membership, (await _grants(session, org, [user.id]))[user.id])


async def _write_grants(session: AsyncSession, user: User, grants: Mapping[str, Permission]) -> None:
    for env_id, permission in grants.items():
        row = await session.scalar(
            select(EnvironmentGrant).where(
                EnvironmentGrant.environment_id == env_id, EnvironmentGrant.user_id == user.id
            )
        )
        if permission == Permission.NONE:
            if row is not None:
                await session.delete(row)
        elif row is None:
            session.add(EnvironmentGrant(environment_id=env_id, user_id=user.id, permission=permission.label))
        else:
            row.permission = permission.label
    await session.flush()


async def add(
    session: AsyncSession,
    org: Organization,
    actor: Principal,
    *,
    email: str,
    name: str,
    role: Role,
    grants: Mapping[str, Permission],
    password: str | None,
) -> Added:
    """Add a person to the organization, creating their account if it is new.

    A new account gets ``password``, or, without one, a one-time invitation whose secret is returned
    once. An existing account keeps its password (giving one is a ``Conflict``); it gets a new invitation
    only while it has no password and no other organization (``_may_invite``). An account whose invitation
    from another organization is still pending is not added (``Conflict``): its link would sign in here too.
    """
    _check_owner_change(actor, role)
    user = await users.by_email(session, email)
    existing = user is not None
    if user is None:
        user = await users.create_user(session, email=email, name=name or email.partition("@")[0], password=password)
    elif password is not None:
        raise Conflict("this person already has an account; add them without a password")
    elif await session.scalar(
        select(Membership.id).where(Membership.organization_id == org.id, Membership.user_id == user.id)
    ):
        raise Conflict(f"{user.email} is already a member of organization {org.slug!r}")
    elif user.password_hash is None and user.invite_hash is not None:
        # Whoever holds the pending link sets the password, and with it would get this organization's
        # membership too: the other organization's admin could sign in here as this person.
        raise Conflict(
            f"{user.email} has not yet accepted an invitation from another organization; add them once they "
            "have set their password"
        )
    membership = Membership(organization_id=org.id, user_id=user.id, role=role.value)
    session.add(membership)
    await _write_grants(session, user, grants)
    invite = users.issue_invite(user) if await _may_invite(session, org, user) else None
    await session.flush()
    return Added(Member(user, membership, {e: p for e, p in grants.items() if p > Permission.NONE}), invite, existing)


async def _may_invite(session: AsyncSession, org: Organization, user: User) -> bool:
    """Whether ``org`` may hand out a link that sets ``user``'s password.

    The link is a credential for the whole account, and an account may belong to several organizations:
    only an account with no password and no other organization gets one. Otherwise an admin of one
    organization could set the password of another's pending (or single-sign-on) member and sign in as
    them; such a person keeps the link, or the sign-in, they have.
    """
    if user.password_hash is not None:
        return False
    elsewhere = await session.scalar(
        select(Membership.id).where(Membership.user_id == user.id, Membership.organization_id != org.id).limit(1)
    )
    return elsewhere is None


async def _keep_an_owner(session: AsyncSession, org: Organization, member: Member) -> None:
    """``Conflict`` if ``member`` is the last owner; the owners' rows are locked so two changes can't both pass."""
    if member.role != Role.OWNER:
        return
    owners = (
        await session.scalars(
            select(Membership.id)
            .where(Membership.organization_id == org.id, Membership.role == Role.OWNER.value)
            .with_for_update()
        )
    ).all()
    if len(owners) <= 1:
        raise Conflict(f"{member.user.email} is the last owner of organization {org.slug!r}; make another owner first")


async def set_role(session: AsyncSession, org: Organization, actor: Principal, ref: str, role: Role) -> Member:
    """Change a member's role; their tokens follow at their next use."""
    member = await find(session, org, ref)
    _check_owner_change(actor, member.role, role)
    if role != member.role:
        await _keep_an_owner(session, org, member)
    member.membership.role = role.value
    await session.flush()
    return member


async def set_grants(
    session: AsyncSession, org: Organization, actor: Principal, ref: str, grants: Mapping[str, Permission]
) -> Member:
    """Set (or, with ``Permission.NONE``, remove) a member's permission in the given environments (by id)."""
    member = await find(session, org, ref)
    _check_owner_change(actor, member.role)
    known = set(await _environment_ids(session, org))
    if set(grants) - known:
        raise NotFound(f"environment(s) not found in organization {org.slug!r}")
    await _write_grants(session, member.user, grants)
    await end_oauth_grants(session, member.user.id, [e for e, p in grants.items() if p == Permission.NONE])
    return await find(session, org, member.user.id)


async def end_oauth_grants(session: AsyncSession, user_id: str, environment_ids: Sequence[str]) -> None:
    """Revoke what OAuth gave the person in these environments: every refresh token (and the access token it
    came with, deny-listed until it expires) and every remembered consent.

    Removing a person, or their permission in an environment, must end their credentials there as it ends
    their API tokens: a refresh token that merely failed while they were out would work again once they
    were added back, stolen or not, and a remembered consent would issue new ones without asking.
    """
    if not environment_ids:
        return
    now = utcnow()
    live = await session.scalars(
        select(RefreshToken).where(
            RefreshToken.user_id == user_id,
            RefreshToken.environment_id.in_(environment_ids),
            RefreshToken.revoked_at.is_(None),
        )
    )
    for row in live:
        row.revoked_at = now
        if row.access_expires_at > now and await session.get(RevokedAccessToken, row.access_jti) is None:
            session.add(RevokedAccessToken(jti=row.access_jti, expires_at=row.access_expires_at))
    await session.execute(
        update(Consent)
        .where(Consent.user_id == user_id, Consent.environment_id.in_(environment_ids), Consent.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.flush()


async def remove(session: AsyncSession, org: Organization, actor: Principal, ref: str) -> tuple[Member, int]:
    """Remove a member and their grants, and revoke the tokens they created here; returns how many were revoked."""
    member = await find(session, org, ref)
    _check_owner_change(actor, member.role)
    await _keep_an_owner(session, org, member)
    env_ids = await _environment_ids(session, org)
    await session.execute(
        delete(EnvironmentGrant).where(
            EnvironmentGrant.user_id == member.user.id, EnvironmentGrant.environment_id.in_(env_ids)
        )
    )
    await end_oauth_grants(session, member.user.id, env_ids)
    owned = await session.scalars(
        select(ApiTokenRow).where(ApiTokenRow.organization_id == org.id, ApiTokenRow.created_by == member.user.id)
    )
    now = utcnow()
    revoked = sum(tokens.revoke(row, now) for row in owned)
    await session.delete(member.membership)
    # An invitation not yet accepted was this organization's: it ends with the membership.
    member.user.invite_hash = member.user.invite_expires_at = None
    await session.flush()
    return member, revoked
