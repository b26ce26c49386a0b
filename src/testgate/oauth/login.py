"""Password sign-in with backoff per account and per source address (OWASP authentication cheat sheet).

After ``login_free_failures`` failures within ``login_window`` an account is locked for ``login_backoff_base``
seconds, doubling with each further failure up to ``login_backoff_max``; a source address gets five times
as many free failures (many people may share one address). Every refusal reads the same whether or not the
email exists, and an unknown email still costs one argon2 verification, so neither wording nor timing
tells which accounts exist.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from sqlalchemy import case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access.users import MAX_PASSWORD, hash_password, verify_password
from testgate.errors import Unauthenticated
from testgate.oauth.settings import OAuthSettings
from testgate.store.base import utcnow
from testgate.store.oauth import LoginAttempt
from testgate.store.tenancy import User

GENERIC = "the email address or password is wrong"
SOURCE_FACTOR = 5


@dataclass
class LoginFailed(Unauthenticated):
    """A refused sign-in; ``retry_after`` (seconds) when refused because of backoff."""

    retry_after: float | None = None


@functools.cache
def _dummy_hash() -> str:
    return hash_password("testgate-dummy-password-for-timing")


def account_key(email: str) -> str:
    """The backoff key of an account: a hash, so the table holds no addresses."""
    return "account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


def source_key(source: str) -> str:
    """The backoff key of a source address."""
    return "source:" + source[:100]


async def login_user(
    session: AsyncSession, email: str, password: str, source: str | None, *, policy: OAuthSettings | None = None
) -> User:
    """The user whose email and password these are.

    MUST raise ``LoginFailed`` with the same message for an unknown email, a wrong password and a disabled
    user, and refuse without checking the password while the account or source is backing off. The caller
    MUST commit ``session`` even when ``LoginFailed`` is raised: the failure count is the point.
    """
    rules = policy or OAuthSettings()
    now = utcnow()
    address = email.strip().lower()[:320]
    if "\x00" in address:
        # No account's address holds it, and PostgreSQL can neither compare nor store text holding it.
        raise LoginFailed(GENERIC)
    limits = {account_key(address): rules.login_free_failures}
    if source:
        limits[source_key(source)] = rules.login_free_failures * SOURCE_FACTOR
    wait = await _wait(session, list(limits), now)
    if wait > 0:
        raise LoginFailed(f"too many failed sign-ins; try again in {math.ceil(wait)} seconds", retry_after=wait)
    user = await session.scalar(select(User).where(User.email == address))
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    bounded = 0 < len(password) <= MAX_PASSWORD
    ok = bounded and await anyio.to_thread.run_sync(verify_password, stored, password)
    if not ok or user is None or user.disabled or not user.password_hash:
        for key, free in limits.items():
            await _count_failure(session, key, free, now, rules)
        raise LoginFailed(GENERIC)
    await session.execute(update(LoginAttempt).where(LoginAttempt.key == account_key(address)).values(failures=0))
    return user


async def _wait(session: AsyncSession, keys: list[str], now: datetime) -> float:
    """Seconds until every key may try again (0: now)."""
    rows = await session.scalars(select(LoginAttempt).where(LoginAttempt.key.in_(keys)))
    until = [r.locked_until for r in rows if r.locked_until is not None and r.locked_until > now]
    return max(((u - now).total_seconds() for u in until), default=0.0)


async def _count_failure(session: AsyncSession, key: str, free: int, now: datetime, rules: OAuthSettings) -> None:
    """One more failure for ``key`` (atomically), and a lockout once past ``free`` failures."""
    bind = session.get_bind()
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(LoginAttempt).values(key=key, failures=0, last_failure_at=now).on_conflict_do_nothing()
    )
    stale = LoginAttempt.last_failure_at < now - timedelta(seconds=rules.login_window)
    await session.execute(
        update(LoginAttempt)
        .where(LoginAttempt.key == key)
        .values(failures=case((stale, 1), else_=LoginAttempt.failures + 1), last_failure_at=now)
    )
    failures = int(await session.scalar(select(LoginAttempt.failures).where(LoginAttempt.key == key)) or 0)
    over = failures - free
    if over >= 0:
        seconds = min(rules.login_backoff_base * 2 ** min(over, 32), rules.login_backoff_max)
        locked = now + timedelta(seconds=seconds)
        await session.execute(update(LoginAttempt).where(LoginAttempt.key == key).values(locked_until=locked))
