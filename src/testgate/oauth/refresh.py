"""Refresh tokens: opaque ``tgr_`` secrets, stored hashed, rotated on every use (RFC 9700 §4.14.2).

Each grant starts a family. Using a token marks it used and issues its successor; presenting a used token
again means it leaked, so the whole family is revoked, and with it the access tokens it issued. One
exception, ``refresh_grace`` seconds after a rotation: two requests of one client racing with the same
token (RFC 9700 allows a grace period). The late one gets ``invalid_grant`` and the family is kept: no
second successor is ever issued, so a thief gains nothing inside the window either.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.config import Settings
from testgate.ids import new_id
from testgate.oauth import clients, jwt, scopes
from testgate.oauth.errors import OAuthError
from testgate.store.base import utcnow
from testgate.store.oauth import RefreshToken, RevokedAccessToken

PREFIX = "tgr_"


@dataclass(frozen=True)
class Tokens:
    """A token response's contents (RFC 6749 §5.1)."""

    access: jwt.AccessToken
    refresh: str
    grant: jwt.Grant
    family_id: str

    def body(self, settings: Settings) -> dict[str, str | int]:
        """The JSON token response (RFC 6749 §5.1)."""
        return {
            "access_token": self.access.token,
            "token_type": "Bearer",
            "expires_in": settings.oauth.access_token_ttl,
            "refresh_token": self.refresh,
            "scope": self.grant.scope,
        }


def generate() -> str:
    """A new refresh token: the prefix and 256 random bits."""
    return PREFIX + secrets.token_urlsafe(32)


async def issue(
    session: AsyncSession,
    settings: Settings,
    grant: jwt.Grant,
    client_pk: str,
    *,
    family_id: str,
    parent_id: str | None,
    refresh_scope: str | None = None,
) -> Tokens:
    """An access token and a refresh token for ``grant``, in ``family_id``.

    The refresh token holds ``refresh_scope`` (default: the grant's). A refresh that narrows the access
    token's scope leaves its successor the scope it had: RFC 6749 §6, the new refresh token's scope "MUST be
    identical to that of the refresh token included by the client".
    """
    access = await jwt.issue(session, settings, grant)
    secret = generate()
    session.add(
        RefreshToken(
            token_hash=clients.digest(secret),
            family_id=family_id,
            parent_id=parent_id,
            client_pk=client_pk,
            user_id=grant.user_id,
            organization_id=grant.organization_id,
            environment_id=grant.environment_id,
            resource=grant.resource,
            scope=refresh_scope or grant.scope,
            access_jti=access.jti,
            access_expires_at=access.expires_at,
            expires_at=utcnow() + timedelta(seconds=settings.oauth.refresh_token_ttl),
        )
    )
    await session.flush()
    return Tokens(access, secret, grant, family_id)


def new_family() -> str:
    """The id of a new grant's token family."""
    return new_id()


async def deny(session: AsyncSession, jti: str, expires_at: datetime) -> None:
    """Deny-list an access token until it expires (RFC 7009 §2.1)."""
    if expires_at > utcnow() and await session.get(RevokedAccessToken, jti) is None:
        session.add(RevokedAccessToken(jti=jti, expires_at=expires_at))
        await session.flush()


async def revoke_family(session: AsyncSession, family_id: str) -> int:
    """Revoke every refresh token of a family and deny-list the access tokens they came with."""
    now = utcnow()
    rows = list(await session.scalars(select(RefreshToken).where(RefreshToken.family_id == family_id)))
    for row in rows:
        row.revoked_at = row.revoked_at or now
        await deny(session, row.access_jti, row.access_expires_at)
    await session.flush()
    return len(rows)


@dataclass(frozen=True)
class Reuse:
    """A used refresh token was presented again outside the grace window; its family is now revoked."""

    row: RefreshToken


async def rotate(
    session: AsyncSession, settings: Settings, secret: str, client_pk: str, scope: str | None, resource: str | None
) -> tuple[RefreshToken, str] | Reuse | OAuthError:
    """Consume ``secret`` for the client: the row and the scope to issue, a ``Reuse``, or the error to answer.

    Returned, not raised, so the caller commits the consumption or revocation before it answers.
    """
    row = None
    if secret.startswith(PREFIX):
        row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == clients.digest(secret)))
    if row is None or row.client_pk != client_pk:
        # RFC 6749 §6: a refresh token is bound to the client it was issued to.
        return OAuthError("the refresh token is not valid", error="invalid_grant")
    now = utcnow()
    if row.revoked_at is not None:
        return OAuthError("the refresh token was revoked", error="invalid_grant")
    if row.used_at is not None:
        if now - row.used_at <= timedelta(seconds=settings.oauth.refresh_grace):
            return OAuthError("the refresh token was just used; use its successor", error="invalid_grant")
        await revoke_family(session, row.family_id)
        return Reuse(row)
    if row.expires_at <= now:
        return OAuthError("the refresh token expired", error="invalid_grant")
    if resource is not None and resource != row.resource:
        return OAuthError("a refresh token cannot change its resource (RFC 8707 §2.2)", error="invalid_target")
    granted = row.scope
    if scope:
        try:
            wanted = scopes.parse(scope)
        except scopes.UnknownScope as exc:
            return OAuthError(str(exc), error="invalid_scope")
        if not scopes.within(wanted, row.scope):
            return OAuthError("RFC 6749 §6: a refresh cannot add scopes", error="invalid_scope")
        granted = " ".join(wanted)
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return OAuthError("the refresh token was just used; use its successor", error="invalid_grant")
    return row, granted
