"""The principal of a console session: the signed-in person, as a member of the organization in the URL."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access import members
from testgate.access.principal import Permission, Principal
from testgate.platform import tenancy
from testgate.store.tenancy import Organization, User


@dataclass(frozen=True)
class EnvironmentChoice:
    """An environment the person can see, and what they hold there."""

    slug: str
    name: str
    permission: Permission


@dataclass(frozen=True)
class Identity:
    """Who the browser is signed in as, in one organization."""

    user: User
    organization: Organization
    principal: Principal
    environments: list[EnvironmentChoice]

    def environment(self, slug: str) -> EnvironmentChoice | None:
        return next((e for e in self.environments if e.slug == slug), None)


async def console_identity(session: AsyncSession, user: User, org_slug: str) -> Identity:
    """The user's principal in ``org_slug``: kind ``user``, the membership's role and the environment grants.

    MUST raise ``NotFound`` when the organization does not exist or the user is not a member of it, so
    that other organizations answer as absent.
    """
    org = await tenancy.organization_by_slug(session, org_slug)
    member = await members.find(session, org, user.id)
    principal = Principal(
        kind="user",
        id=user.id,
        name=user.email,
        organization_id=org.id,
        role=member.role,
        grants=dict(member.grants),
        user_id=user.id,
    )
    visible = [
        EnvironmentChoice(env.slug, env.name, principal.permission_in(env.id))
        for env in await tenancy.list_environments(session, org)
    ]
    return Identity(user, org, principal, [e for e in visible if e.permission > Permission.NONE])
