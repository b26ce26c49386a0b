"""Token revocation (RFC 7009): refresh tokens revoke their family, access tokens join the deny-list.

The client authenticates as at the token endpoint, and may revoke only tokens issued to it (RFC 7009 §2.1).
An unknown, foreign, expired or malformed token is answered 200 like a revoked one (RFC 7009 §2.2), so
the endpoint tells nobody which tokens exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request
from fastapi.responses import Response
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.config import Settings
from testgate.errors import Unauthenticated
from testgate.oauth import clients, events, keys, refresh
from testgate.oauth.context import fetcher_of, platform_of
from testgate.oauth.errors import NO_STORE, OAuthError
from testgate.oauth.form import client_credentials, form_fields
from testgate.oauth.jwt import looks_like_jwt, unverified_header
from testgate.store.oauth import OAuthClient, RefreshToken


@dataclass(frozen=True)
class _Revoked:
    """Where a revoked token worked: its organization and environment (for the audit event)."""

    organization_id: str | None
    environment_id: str | None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


async def revoke_refresh(session: AsyncSession, client: OAuthClient, token: str) -> RefreshToken | None:
    """Revoke the family of the client's refresh token ``token``; the row, or None if not the client's."""
    row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == clients.digest(token)))
    if row is None or row.client_pk != client.id:
        return None
    await refresh.revoke_family(session, row.family_id)
    return row


async def revoke_access(session: AsyncSession, settings: Settings, client: OAuthClient, token: str) -> _Revoked | None:
    """Deny-list the client's access token ``token`` (signature checked, expiry not: it may be near)."""
    try:
        kid = unverified_header(token).get("kid") if looks_like_jwt(token) else None
    except Unauthenticated:
        return None
    key = await keys.verification_key(session, settings.oauth, kid) if isinstance(kid, str) else None
    if key is None:
        return None
    try:
        claims = jwt.decode(token, key, algorithms=[keys.ALGORITHM]).claims
    except JoseError:
        return None
    jti, exp = claims.get("jti"), claims.get("exp")
    if claims.get("client_id") != client.client_id or not isinstance(jti, str) or not isinstance(exp, int | float):
        return None
    await refresh.deny(session, jti, datetime.fromtimestamp(exp, UTC))
    return _Revoked(_text(claims.get("org")), _text(claims.get("env")))


async def revocation_endpoint(request: Request) -> Response:
    """``POST /oauth/revoke``."""
    platform = platform_of(request)
    fields = await form_fields(request)
    credentials = client_credentials(request, fields)
    client = await clients.resolve(platform.db, fetcher_of(request), platform.settings.oauth, credentials.client_id)
    clients.check_secret(client, credentials)
    token = fields.get("token")
    if not token:
        raise OAuthError("token is required (RFC 7009 §2.1)")
    revoked: _Revoked | None = None
    kind = "refresh_token"
    # RFC 7009 §2.1: token_type_hint is only a hint; the token's own shape says what it is.
    async with platform.db.session() as session:
        if token.startswith(refresh.PREFIX):
            row = await revoke_refresh(session, client, token)
            revoked = _Revoked(row.organization_id, row.environment_id) if row is not None else None
        elif looks_like_jwt(token):
            revoked, kind = await revoke_access(session, platform.settings, client, token), "access_token"
    if revoked is not None:
        event = events.AuthEvent(
            "oauth.token_revoked", "allowed", revoked.organization_id, "client", client.client_id, client.client_name
        )
        event.environment_id = revoked.environment_id
        event.resources = [events.client_resource(client.client_id, client.client_name)]
        event.arguments = {"kind": kind}  # a key named "token*" would be masked as a secret
        await events.record(platform, request, event, transport="rest")
    return Response(status_code=200, headers=NO_STORE)
