"""Bearer credentials: the one function every HTTP entry point uses to turn a token into a principal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from testgate.access import tokens
from testgate.access.principal import Principal
from testgate.errors import Unauthenticated

if TYPE_CHECKING:
    from testgate.platform.context import Platform


async def verify_bearer(
    platform: Platform, token: str, *, source: str | None, resource: str | None = None
) -> Principal:
    """The principal behind a bearer token.

    MUST raise ``Unauthenticated`` for a malformed, unknown, expired or revoked token. API tokens
    (``tgp_``) and OAuth access tokens (JWTs) are verified here, so every caller keeps calling this one
    function. ``source`` (the peer address) is recorded as an API token's last use. ``resource`` is the
    URL the token is presented to (the environment's MCP URL or REST base): an OAuth access token MUST
    name it as its audience (RFC 8707, RFC 9068 §4), so without it an access token is always refused.
    """
    if not token.startswith(tokens.PREFIX):
        return await _oauth(platform, token, resource)
    try:
        # The session commits the token's last-used time and address.
        async with platform.db.session() as session:
            return await tokens.authenticate(session, token, source=source)
    except tokens.TokenRejected as exc:
        # The failed session rolled back; a known token refused is audited in a transaction of its own.
        await tokens.record_rejection(platform, exc.token_id, exc.token_name, exc.organization_id, exc.message, source)
        raise


async def _oauth(platform: Platform, token: str, resource: str | None) -> Principal:
    from testgate.oauth import jwt

    if not jwt.looks_like_jwt(token):
        raise Unauthenticated("the bearer token is neither a testgate API token nor an access token")
    if resource is None:
        raise Unauthenticated("an OAuth access token can't be checked here: no resource to match its audience")
    async with platform.db.session() as session:
        return await jwt.authenticate(session, platform.settings, token, resource=resource)
