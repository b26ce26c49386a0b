"""Bearer credentials: the one function every HTTP entry point uses to turn a token into a principal."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from testgate.access import tokens
from testgate.access.principal import Principal
from testgate.errors import Unauthenticated
from testgate.store.base import utcnow

if TYPE_CHECKING:
    from testgate.platform.context import Platform


def bearer_of(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header's value, None without one.

    From the header only, never the query string (RFC 6750 §2.1, §5.3); the scheme name is
    case-insensitive (RFC 7235 §2.1).
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def verify_bearer(
    platform: Platform, token: str, *, source: str | None, resource: str | None = None
) -> Principal:
    """The principal behind a bearer token.

    MUST raise ``Unauthenticated`` for a malformed, unknown, expired or revoked token. API tokens
    (``tgp_``) and OAuth access tokens (JWTs) are verified here, so every caller keeps calling this one
    function. ``source`` (the peer address) is recorded as an API token's last use. ``resource`` is the
    URL the token is presented to (the environment's MCP URL or REST base): an OAuth access token MUST
    name it as its audience (RFC 8707, RFC 9068 §4), so without it an access token is always refused.

    A verified token is reused (``platform.principals``) until access changes anywhere, its expiry, or
    ``access_cache_seconds``; a refused one is verified again on every request.
    """
    key = (tokens.digest(token), resource, source)
    cached = platform.principals.get(key)
    if cached is not None:
        return cached
    version = platform.db.access.current()
    if not token.startswith(tokens.PREFIX):
        principal, until = await _oauth(platform, token, resource)
    else:
        try:
            # The session commits the token's last-used time and address.
            async with platform.db.session() as session:
                principal, until = await tokens.authenticate_until(session, token, source=source)
        except tokens.TokenRejected as exc:
            # The failed session rolled back; a known token refused is audited in a transaction of its own.
            await tokens.record_rejection(
                platform, exc.token_id, exc.token_name, exc.organization_id, exc.message, source
            )
            raise
    platform.principals.put(key, principal, version, (until - utcnow()).total_seconds())
    return principal


async def _oauth(platform: Platform, token: str, resource: str | None) -> tuple[Principal, datetime]:
    from testgate.oauth import jwt

    if not jwt.looks_like_jwt(token):
        raise Unauthenticated("the bearer token is neither a testgate API token nor an access token")
    if resource is None:
        raise Unauthenticated("an OAuth access token can't be checked here: no resource to match its audience")
    async with platform.db.session(write=False) as session:
        return await jwt.authenticate_until(session, platform.settings, token, resource=resource)
