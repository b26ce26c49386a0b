"""Access tokens: ES256-signed JWTs (RFC 9068 profile) bound to one environment's resource URL.

Claims: ``iss``, ``sub`` (user id), ``aud`` (the resource), ``exp``, ``iat``, ``nbf``, ``jti``, ``scope``,
``client_id``, ``org`` and ``env`` (ids). Verification MUST refuse: any ``alg`` but ES256 (``none``, and HS256
keyed with the public key: RFC 8725 §2.1, §3.1), a missing or unknown ``kid``, another ``typ``, a bad
signature, an expired or not-yet-valid token, another issuer, another audience (RFC 8707, RFC 9068 §4), a
revoked ``jti``, and a user who was removed or disabled. The principal's permission is the lower of the
scope and the user's current role or grant in that environment, and it holds nothing anywhere else.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate import jsontext
from testgate.access.principal import Permission, Principal, Role
from testgate.config import Settings
from testgate.errors import Unauthenticated
from testgate.oauth import keys, scopes
from testgate.oauth.metadata import issuer, parse_resource
from testgate.store.base import utcnow
from testgate.store.oauth import RevokedAccessToken
from testgate.store.tenancy import Environment, EnvironmentGrant, Membership, Organization, User

TYP = "at+jwt"  # RFC 9068 §2.1


@dataclass(frozen=True)
class AccessToken:
    """A signed access token and what the store needs to revoke it."""

    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class Grant:
    """Who a token is for, where, and how far its scope reaches."""

    user_id: str
    client_id: str
    organization_id: str
    environment_id: str
    resource: str
    scope: str


async def issue(session: AsyncSession, settings: Settings, grant: Grant) -> AccessToken:
    """Sign an access token for ``grant`` with the active key."""
    row = await keys.active_key(session, settings.oauth)
    now = utcnow().replace(microsecond=0)
    expires = now + timedelta(seconds=settings.oauth.access_token_ttl)
    jti = secrets.token_urlsafe(24)
    claims = {
        "iss": issuer(settings),
        "sub": grant.user_id,
        "aud": grant.resource,
        "exp": int(expires.timestamp()),
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "jti": jti,
        "scope": grant.scope,
        "client_id": grant.client_id,
        "org": grant.organization_id,
        "env": grant.environment_id,
    }
    header = {"alg": keys.ALGORITHM, "kid": row.kid, "typ": TYP}
    token = jwt.encode(header, claims, keys.private_key(row, settings.oauth), algorithms=[keys.ALGORITHM])
    return AccessToken(token, jti, expires)


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments: worth verifying as an access token."""
    return token.count(".") == 2 and all(token.split("."))


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, decoded but not trusted; ``Unauthenticated`` if it is not a JSON object."""
    segment = token.split(".", 1)[0]
    try:
        header = jsontext.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        raise Unauthenticated("the access token is malformed") from None
    if not isinstance(header, dict):
        raise Unauthenticated("the access token is malformed")
    return header


async def verified_claims(session: AsyncSession, settings: Settings, token: str, resource: str) -> dict[str, Any]:
    """The claims of a token this server signed for ``resource``, still valid now; ``Unauthenticated`` otherwise."""
    header = unverified_header(token)
    # RFC 8725 §3.1: the algorithm is fixed by the verifier, never taken from the token.
    if header.get("alg") != keys.ALGORITHM or "crit" in header:
        raise Unauthenticated("the access token's algorithm is not accepted")
    if header.get("typ") != TYP:
        raise Unauthenticated("the token is not an access token")
    kid = header.get("kid")
    key = await keys.verification_key(session, settings.oauth, kid) if isinstance(kid, str) else None
    if key is None:
        raise Unauthenticated("the access token's signing key is unknown")
    try:
        claims = jwt.decode(token, key, algorithms=[keys.ALGORITHM]).claims
        essential: ClaimsOption = {"essential": True}
        JWTClaimsRegistry(
            leeway=settings.oauth.clock_leeway, exp=essential, iat=essential, nbf=essential, jti=essential
        ).validate(claims)
    except JoseError as exc:
        raise Unauthenticated(f"the access token is not valid ({exc.error})") from None
    if claims.get("iss") != issuer(settings):
        raise Unauthenticated("the access token was issued by another server")
    if claims.get("aud") != resource:
        raise Unauthenticated("the access token is for another resource")
    if await session.get(RevokedAccessToken, str(claims["jti"])) is not None:
        raise Unauthenticated("the access token was revoked")
    return claims


async def authenticate(session: AsyncSession, settings: Settings, token: str, *, resource: str) -> Principal:
    """The principal behind an access token presented to ``resource``."""
    return (await authenticate_until(session, settings, token, resource=resource))[0]


async def authenticate_until(
    session: AsyncSession, settings: Settings, token: str, *, resource: str
) -> tuple[Principal, datetime]:
    """``authenticate``, and the token's expiry: the answer may be reused until then if access does not change."""
    claims = await verified_claims(session, settings, token, resource)
    expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
    target = parse_resource(settings, resource)
    org = await session.get(Organization, str(claims.get("org")))
    env = await session.get(Environment, str(claims.get("env")))
    # The slugs in the audience must still name the environment the token was issued for.
    if target is None or org is None or env is None or env.organization_id != org.id:
        raise Unauthenticated("the access token's environment no longer exists")
    if (org.slug, env.slug) != (target.organization, target.environment):
        raise Unauthenticated("the access token is for another environment")
    user = await session.get(User, str(claims.get("sub")))
    membership = await session.scalar(
        select(Membership).where(Membership.organization_id == org.id, Membership.user_id == (user.id if user else ""))
    )
    if user is None or user.disabled or membership is None:
        raise Unauthenticated("the access token's user no longer has access")
    held = await _held(session, Role(membership.role), user.id, env.id)
    # Confined to the audience's environment: no organization-wide action, no other environment.
    principal = Principal(
        kind="oauth",
        id=str(claims["jti"]),
        name=user.email,
        organization_id=org.id,
        role=Role.MEMBER,
        grants={env.id: held},
        cap=scopes.cap(str(claims.get("scope", ""))),
        user_id=user.id,
        client_id=str(claims.get("client_id")),
    )
    return principal, expires


async def _held(session: AsyncSession, role: Role, user_id: str, environment_id: str) -> Permission:
    """The user's own permission in the environment now: admin for owners and admins, else their grant."""
    if role in (Role.OWNER, Role.ADMIN):
        return Permission.ADMIN
    grant = await session.scalar(
        select(EnvironmentGrant.permission).where(
            EnvironmentGrant.user_id == user_id, EnvironmentGrant.environment_id == environment_id
        )
    )
    return Permission.parse(grant) if grant else Permission.NONE
