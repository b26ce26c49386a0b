"""Users and passwords: argon2id hashes, invitations, and the first owner of an organization (its setup link).

An invitation is a one-time link whose secret is stored only as a SHA-256 hash on the user, valid for
seven days; redeeming it sets the user's password exactly once.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access.principal import Role
from testgate.errors import Conflict, FieldError, InvalidInput, NotFound
from testgate.platform.tenancy import hash_secret
from testgate.store.base import utcnow
from testgate.store.tenancy import Membership, Organization, SetupToken, User

# argon2-cffi's defaults are argon2id with RFC 9106's second recommended parameter set.
_hasher = PasswordHasher()
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # hashing is deliberately slow, so the input is bounded
INVITE_TTL = timedelta(days=7)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; parameters encoded in the hash)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; False for a mismatch or an unreadable hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when ``password_hash`` was made with other parameters than today's (or cannot be read)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


async def rehash_if_needed(user: User, password: str) -> bool:
    """After ``verify_password`` accepted ``password``: store a fresh hash if the parameters changed.

    MUST be called only with a password that was just verified against ``user.password_hash``.
    """
    if user.password_hash is None or not needs_rehash(user.password_hash):
        return False
    user.password_hash = await anyio.to_thread.run_sync(hash_password, password)
    return True


def check_password(password: str) -> None:
    """``InvalidInput`` unless the password is between 12 and 1024 characters."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            "the password is too short",
            errors=[FieldError("password", f"must have at least {MIN_PASSWORD} characters")],
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(
            "the password is too long",
            errors=[FieldError("password", f"must have at most {MAX_PASSWORD} characters")],
        )


def normalize_email(email: str) -> str:
    """The address trimmed and lower-cased; ``InvalidInput`` if it does not look like one."""
    value = email.strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        raise InvalidInput("the email address is not valid", errors=[FieldError("email", "not an email address")])
    return value


def _check_name(name: str) -> str:
    value = " ".join(name.split())
    if not value or len(value) > 200:
        raise InvalidInput("the name is not valid", errors=[FieldError("name", "1 to 200 characters")])
    return value


async def check_setup_token(session: AsyncSession, org: Organization, token: str) -> None:
    """``NotFound`` for an unknown setup token, ``Conflict`` for a used one or an organization with an owner."""
    row = await session.scalar(
        select(SetupToken).where(SetupToken.organization_id == org.id, SetupToken.token_hash == hash_secret(token))
    )
    if row is None:
        raise NotFound("this setup link is not valid")
    if row.used_at is not None:
        raise Conflict("this setup link was already used")
    owners = await session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.organization_id == org.id, Membership.role == Role.OWNER.value)
    )
    if owners:
        raise Conflict(f"organization {org.slug!r} already has an owner")


async def redeem_setup_token(session: AsyncSession, org: Organization, token: str) -> None:
    """Mark the setup token used, exactly once even under concurrent submissions."""
    await check_setup_token(session, org, token)
    result = await session.execute(
        update(SetupToken)
        .where(
            SetupToken.organization_id == org.id,
            SetupToken.token_hash == hash_secret(token),
            SetupToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("this setup link was already used")


async def create_owner(session: AsyncSession, org: Organization, *, email: str, name: str, password: str) -> User:
    """Create a user with an argon2id password hash and make them an owner of ``org``."""
    user = await create_user(session, email=email, name=name, password=password)
    session.add(Membership(organization_id=org.id, user_id=user.id, role=Role.OWNER.value))
    await session.flush()
    return user


async def by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this address (compared normalized), if any."""
    return await session.scalar(select(User).where(User.email == normalize_email(email)))


async def create_user(session: AsyncSession, *, email: str, name: str, password: str | None) -> User:
    """A new user: with an argon2id hash of ``password``, or with none until an invitation is redeemed."""
    if password is not None:
        check_password(password)
    address = normalize_email(email)
    display = _check_name(name)
    if await session.scalar(select(User.id).where(User.email == address)) is not None:
        raise Conflict("a user with this email address already exists")
    password_hash = await anyio.to_thread.run_sync(hash_password, password) if password is not None else None
    user = User(email=address, name=display, password_hash=password_hash)
    session.add(user)
    await session.flush()
    return user


def issue_invite(user: User, now: datetime | None = None) -> str:
    """A one-time invitation secret for ``user``; only its hash is kept, and it replaces any earlier one."""
    secret = secrets.token_urlsafe(32)
    user.invite_hash = hash_secret(secret)
    user.invite_expires_at = (now or utcnow()) + INVITE_TTL
    return secret


async def invited_user(session: AsyncSession, secret: str, *, now: datetime | None = None) -> User:
    """The user a still valid invitation secret belongs to (the invitation page's form); ``redeem_invite``'s
    errors otherwise."""
    user = await session.scalar(select(User).where(User.invite_hash == hash_secret(secret)))
    member = user is not None and await session.scalar(select(Membership.id).where(Membership.user_id == user.id))
    if user is None or user.invite_expires_at is None or user.disabled or not member:
        # Used already, or the person was removed or disabled since: the link no longer stands for anything.
        raise NotFound("this invitation link is not valid (it may have been used already)")
    if user.invite_expires_at <= (now or utcnow()):
        raise Conflict("this invitation link has expired; ask an admin for a new one")
    return user


async def redeem_invite(session: AsyncSession, secret: str, *, password: str, now: datetime | None = None) -> User:
    """Set the invited user's password from the link's secret, exactly once even under concurrent submissions.

    MUST raise ``NotFound`` for an unknown secret and ``Conflict`` for an expired or already used one.
    """
    check_password(password)
    hashed = hash_secret(secret)
    user = await invited_user(session, secret, now=now)
    password_hash = await anyio.to_thread.run_sync(hash_password, password)
    result = await session.execute(
        update(User)
        .where(User.id == user.id, User.invite_hash == hashed)
        .values(password_hash=password_hash, invite_hash=None, invite_expires_at=None)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("this invitation link was already used")
    await session.refresh(user)
    return user
