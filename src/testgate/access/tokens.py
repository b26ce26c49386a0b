"""API tokens: ``tgp_`` + 43 base62 characters (256 random bits) + a 6-character base62 CRC32.

The prefix and checksum let secret scanners recognise a leaked token without asking us; only a
SHA-256 hash of the whole token is stored, so the database never holds a usable secret.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access.principal import Permission, Principal, Role
from testgate.errors import InvalidInput, Unauthenticated
from testgate.store.base import utcnow
from testgate.store.tenancy import EnvironmentGrant, Membership, User
from testgate.store.tokens import ApiTokenRow

PREFIX = "tgp_"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY = 43  # ceil(256 / log2(62))


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        out.append(_B62[rem])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), 6)


def generate() -> str:
    """A new token secret."""
    body = _base62(secrets.randbits(256), _BODY)
    return f"{PREFIX}{body}{_checksum(body)}"


def well_formed(token: str) -> bool:
    """Prefix, length, alphabet and checksum are right (cheap, before any database lookup)."""
    if not token.startswith(PREFIX) or len(token) != len(PREFIX) + _BODY + 6:
        return False
    rest = token[len(PREFIX) :]
    if any(c not in _B62 for c in rest):
        return False
    body, check = rest[:_BODY], rest[_BODY:]
    return secrets.compare_digest(_checksum(body), check)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Issued:
    row: ApiTokenRow
    secret: str


async def issue(
    session: AsyncSession,
    *,
    organization_id: str,
    name: str,
    role: Role,
    grants: dict[str, Permission],
    created_by: str | None,
    expires_at: datetime | None,
    labels: dict[str, str] | None = None,
) -> Issued:
    """Create a token; the secret is returned once and only its hash is kept."""
    if role not in (Role.ADMIN, Role.MEMBER):
        raise InvalidInput("a token's role is admin or member")
    if role == Role.MEMBER and not grants:
        raise InvalidInput("a member token needs a permission in at least one environment")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("the expiry is in the past")
    secret = generate()
    row = ApiTokenRow(
        organization_id=organization_id,
        created_by=created_by,
        name=name,
        role=role.value,
        grants={env: perm.label for env, perm in grants.items()},
        labels=labels or {},
        secret_hash=digest(secret),
        prefix=secret[:8],
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return Issued(row, secret)


async def _creator_bounds(session: AsyncSession, row: ApiTokenRow) -> tuple[Role, dict[str, Permission]] | None:
    """What the token's creator holds now (None: the creator is gone or disabled)."""
    if row.created_by is None:
        return Role.OWNER, {}
    user = await session.get(User, row.created_by)
    membership = await session.scalar(
        select(Membership).where(
            Membership.organization_id == row.organization_id, Membership.user_id == row.created_by
        )
    )
    if user is None or user.disabled or membership is None:
        return None
    grants = await session.scalars(select(EnvironmentGrant).where(EnvironmentGrant.user_id == user.id))
    return Role(membership.role), {g.environment_id: Permission.parse(g.permission) for g in grants}


async def authenticate(session: AsyncSession, token: str, *, source: str | None = None) -> Principal:
    """The principal behind an API token; ``Unauthenticated`` if unknown, expired or revoked."""
    if not well_formed(token):
        raise Unauthenticated("the token is malformed")
    row = await session.scalar(select(ApiTokenRow).where(ApiTokenRow.secret_hash == digest(token)))
    if row is None:
        raise Unauthenticated("the token is not valid")
    now = utcnow()
    if row.revoked_at is not None and row.revoked_at <= now:
        raise Unauthenticated("the token was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated("the token expired")
    bounds = await _creator_bounds(session, row)
    if bounds is None:
        raise Unauthenticated("the token's creator no longer has access")
    creator_role, creator_grants = bounds
    row.last_used_at, row.last_used_from = now, source
    return _principal(row, creator_role, creator_grants)


def _principal(row: ApiTokenRow, creator_role: Role, creator_grants: dict[str, Permission]) -> Principal:
    creator_is_admin = creator_role in (Role.OWNER, Role.ADMIN)
    if row.role == Role.ADMIN.value and creator_is_admin:
        return Principal("api_token", row.id, row.name, row.organization_id, Role.ADMIN)
    grants: dict[str, Permission] = {}
    for env_id, label in row.grants.items():
        held = Permission.ADMIN if creator_is_admin else creator_grants.get(env_id, Permission.NONE)
        grants[env_id] = min(Permission.parse(label), held)
    if row.role == Role.ADMIN.value:
        # An admin token whose creator was demoted keeps at most the creator's grants.
        grants = dict(creator_grants)
    return Principal("api_token", row.id, row.name, row.organization_id, Role.MEMBER, grants=grants)
