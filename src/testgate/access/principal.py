"""Who is calling, and what they may do.

Organization roles: owner, admin, member. Per-environment permissions: read < run < write < admin,
each including the ones before. Owners and admins hold admin in every environment of their organization.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Literal


class Permission(IntEnum):
    NONE = 0
    READ = 1
    RUN = 2
    WRITE = 3
    ADMIN = 4

    @classmethod
    def parse(cls, value: str) -> Permission:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(f"{value!r} is not one of read, run, write, admin") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


PrincipalKind = Literal["user", "api_token", "oauth", "local"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, bound to one organization.

    ``grants`` maps environment ids to the member's permission there; ``cap`` bounds everything
    (an OAuth scope, or an API token's own grant).
    """

    kind: PrincipalKind
    id: str | None
    name: str
    organization_id: str
    role: Role
    grants: Mapping[str, Permission] = field(default_factory=dict)
    cap: Permission = Permission.ADMIN
    user_id: str | None = None
    client_id: str | None = None

    def permission_in(self, environment_id: str | None) -> Permission:
        """The effective permission in an environment (``None``: organization-wide actions)."""
        if self.role in (Role.OWNER, Role.ADMIN):
            held = Permission.ADMIN
        elif environment_id is None:
            held = Permission.NONE
        else:
            held = self.grants.get(environment_id, Permission.NONE)
        return min(held, self.cap)

    @property
    def is_org_admin(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN) and self.cap >= Permission.ADMIN


def local_owner(organization_id: str, name: str = "local") -> Principal:
    """The caller of the local CLI and of ``mcp serve`` on stdio: runs as the machine's user."""
    return Principal(kind="local", id=None, name=name, organization_id=organization_id, role=Role.OWNER)
