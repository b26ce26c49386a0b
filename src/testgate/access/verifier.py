"""Bearer credentials: the one function every HTTP entry point uses to turn a token into a principal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from testgate.access import tokens
from testgate.access.principal import Principal
from testgate.errors import Unauthenticated

if TYPE_CHECKING:
    from testgate.platform.context import Platform


async def verify_bearer(platform: Platform, token: str, *, source: str | None) -> Principal:
    """The principal behind a bearer token.

    MUST raise ``Unauthenticated`` for a malformed, unknown, expired or revoked token. API tokens
    (``tgp_``) are verified here; OAuth access tokens join as another branch, so every caller keeps
    calling this one function. ``source`` (the peer address) is recorded as the token's last use.
    """
    if not token.startswith(tokens.PREFIX):
        raise Unauthenticated("the bearer token is not a testgate API token")
    # The session commits the token's last-used time and address.
    async with platform.db.session() as session:
        return await tokens.authenticate(session, token, source=source)
