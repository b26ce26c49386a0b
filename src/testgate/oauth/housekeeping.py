"""Housekeeping: delete authorization-server rows that can no longer matter, so the tables stay small.

Expired codes and refresh tokens are kept a day past expiry (a late replay is still recognised as one),
deny-list entries until the access token they block has expired, failure counters until the backoff
window has passed, and retired signing keys until their last token expired (``keys.prune``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Delete, delete, or_
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.oauth import keys
from testgate.oauth.settings import OAuthSettings
from testgate.store.base import utcnow
from testgate.store.db import Database
from testgate.store.oauth import AuthorizationCode, LoginAttempt, RefreshToken, RevokedAccessToken

KEEP_EXPIRED = timedelta(days=1)


@dataclass(frozen=True)
class Purged:
    """How many rows of each kind were deleted."""

    codes: int
    refresh_tokens: int
    denied_access_tokens: int
    login_counters: int
    signing_keys: int


async def purge(session: AsyncSession, settings: OAuthSettings, now: datetime | None = None) -> Purged:
    """Delete what expired; returns how many rows of each kind went."""
    moment = now or utcnow()

    async def gone(statement: Delete) -> int:
        result = await session.execute(statement)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    codes = await gone(delete(AuthorizationCode).where(AuthorizationCode.expires_at < moment - KEEP_EXPIRED))
    refresh = await gone(delete(RefreshToken).where(RefreshToken.expires_at < moment - KEEP_EXPIRED))
    denied = await gone(delete(RevokedAccessToken).where(RevokedAccessToken.expires_at < moment))
    quiet = LoginAttempt.last_failure_at < moment - timedelta(seconds=settings.login_window)
    unlocked = or_(LoginAttempt.locked_until.is_(None), LoginAttempt.locked_until < moment)
    counters = await gone(delete(LoginAttempt).where(quiet, unlocked))
    retired = await keys.prune(session, settings, moment)
    return Purged(codes, refresh, denied, counters, retired)


async def purge_now(db: Database, settings: OAuthSettings) -> Purged:
    """One housekeeping pass in its own transaction."""
    async with db.session() as session:
        return await purge(session, settings)
