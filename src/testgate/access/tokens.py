"""API tokens: ``tgp_`` + 43 base62 characters (256 random bits) + a 6-character base62 CRC32.

The prefix and checksum let secret scanners recognise a leaked token without asking us; only a
SHA-256 hash of the whole token is stored, so the database never holds a usable secret. A token never
grants more than its creator holds: checked when it is created (``check_within``) and again at every
use, against the creator's current role and grants (``authenticate``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access.principal import Permission, Principal, Role
from testgate.audit import recorder
from testgate.errors import Conflict, InvalidInput, PermissionDenied, Unauthenticated
from testgate.store.base import utcnow
from testgate.store.tenancy import EnvironmentGrant, Membership, User
from testgate.store.tokens import ApiTokenRow

if TYPE_CHECKING:
    from testgate.platform.context import Platform

log = structlog.get_logger("testgate.access")

PREFIX = "tgp_"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY = 43  # ceil(256 / log2(62))
MAX_GRACE = timedelta(days=7)
_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


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
    """The SHA-256 hex digest a token is stored and looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_duration(text: str) -> timedelta | None:
    """``P30D`` -> 30 days; None unless ``text`` is an ISO 8601 duration of weeks, days, hours, minutes, seconds.

    ``ValueError`` for one longer than a ``timedelta`` holds (about 2.7 million years)."""
    match = _DURATION.match(text.strip().upper())
    if match is None or not any(match.groupdict().values()):
        return None
    try:
        return timedelta(**{unit: int(n) for unit, n in match.groupdict().items() if n})
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any expiry or grace period can be") from None


def _moment(text: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(text), time.min, UTC)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_expiry(text: str, now: datetime) -> datetime:
    """When a token given ``expires=text`` at ``now`` expires; ``ValueError`` says why it can't be read.

    Months and years are refused: their length varies, and an expiry should mean exactly what it says.
    """
    delta = parse_duration(text)
    if delta is None and text.strip().upper().startswith("P"):
        raise ValueError(f"{text!r}: use weeks, days, hours, minutes or seconds (P30D, PT12H, P2W, P1DT6H)")
    try:
        moment = now + delta if delta is not None else _moment(text.strip())
    except OverflowError:
        raise ValueError(f"{text!r} ends after the year 9999") from None
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (P30D) nor a date (2027-01-01)") from None
    if moment <= now:
        raise ValueError(f"{text!r} is not in the future")
    return moment


def parse_grace(text: str) -> timedelta:
    """A rotation's grace period: an ISO 8601 duration of at most seven days (``PT0S``: none)."""
    delta = parse_duration(text)
    if delta is None:
        raise ValueError(f"{text!r} is not a duration such as PT1H or P1D")
    if delta > MAX_GRACE:
        raise ValueError(f"{text!r} is longer than the longest grace period, seven days (P7D)")
    return delta


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
    created_by_name: str = "",
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
        created_by_name=created_by_name[:200],
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


def person_of(principal: Principal) -> str | None:
    """The user behind a principal: a person's own id, or an API token's creator (None: nobody, or local)."""
    return principal.user_id or (principal.id if principal.kind == "user" else None)


def creator_of(principal: Principal) -> str | None:
    """The user a new token is bounded by (None: the local owner); tokens never mint tokens.

    MUST refuse API tokens: a token minted by a token would outlive the revocation of its parent.
    """
    if principal.kind == "api_token":
        raise PermissionDenied("API tokens cannot create or rotate tokens; a person must (CLI, console or OAuth)")
    if principal.kind == "local":
        return None
    user_id = person_of(principal)
    if user_id is None:
        raise PermissionDenied("tokens are created by people; this caller is not a user")
    return user_id


def check_within(principal: Principal, role: Role, grants: dict[str, Permission], names: dict[str, str]) -> None:
    """``PermissionDenied`` if the token would hold more than ``principal`` holds now (``names``: env id -> slug)."""
    if role == Role.ADMIN and not principal.is_org_admin:
        raise PermissionDenied("only owners and admins can create admin tokens", details={"required": "admin"})
    for env_id, wanted in grants.items():
        held = principal.permission_in(env_id)
        if wanted > held:
            raise PermissionDenied(
                f"you hold {held.label} in {names.get(env_id, env_id)!r}, so a token cannot be given {wanted.label}",
                details={"required": wanted.label, "held": held.label},
            )


def status(row: ApiTokenRow, now: datetime) -> str:
    """active, expired or revoked."""
    if row.revoked_at is not None and row.revoked_at <= now:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def revoke(row: ApiTokenRow, now: datetime | None = None) -> bool:
    """Revoke the token (both secrets, if a rotation's grace is running); False if it already was."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = now or utcnow()
    return True


def rotate(row: ApiTokenRow, grace: timedelta, now: datetime | None = None) -> str:
    """Give the token a new secret; the old one keeps working for ``grace`` (at most seven days).

    A rotation during an earlier grace period ends that period: only the newest two secrets are known.
    """
    moment = now or utcnow()
    if grace > MAX_GRACE or grace < timedelta(0):
        raise InvalidInput("a rotation's grace period is between none and seven days")
    if status(row, moment) != "active":
        raise Conflict(f"token {row.name!r} is {status(row, moment)}; create a new one instead")
    secret = generate()
    # The old hash stays known even without a grace period, so presenting it is audited as a rejection.
    row.previous_secret_hash, row.previous_valid_until = row.secret_hash, moment + grace
    row.secret_hash, row.prefix, row.rotated_at = digest(secret), secret[:8], moment
    return secret


@dataclass
class TokenRejected(Unauthenticated):
    """A known token refused: expired, revoked, rotated out, or its creator lost access (worth an audit event).

    The token's identity is kept in fields, not ``details``, so no error response reveals it.
    """

    token_id: str = ""
    token_name: str = ""
    organization_id: str = ""


def _rejected(row: ApiTokenRow, message: str) -> TokenRejected:
    return TokenRejected(message, token_id=row.id, token_name=row.name, organization_id=row.organization_id)


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


async def authenticate(
    session: AsyncSession, token: str, *, source: str | None = None, now: datetime | None = None
) -> Principal:
    """The principal behind an API token.

    MUST raise ``Unauthenticated`` if the token is malformed or unknown, and ``TokenRejected`` if it is
    expired, revoked, a rotated-out secret past its grace period, or its creator lost access.
    """
    return (await authenticate_until(session, token, source=source, now=now))[0]


async def authenticate_until(
    session: AsyncSession, token: str, *, source: str | None = None, now: datetime | None = None
) -> tuple[Principal, datetime]:
    """``authenticate``, and until when the answer may be reused for ``source`` if access does not change:
    the token's expiry, the end of a rotated-out secret's grace, or when its next use must be recorded.
    """
    if not well_formed(token):
        raise Unauthenticated("the token is malformed")
    hashed = digest(token)
    row = await session.scalar(
        select(ApiTokenRow).where(or_(ApiTokenRow.secret_hash == hashed, ApiTokenRow.previous_secret_hash == hashed))
    )
    if row is None:
        raise Unauthenticated("the token is not valid")
    moment = now or utcnow()
    if row.revoked_at is not None and row.revoked_at <= moment:
        raise _rejected(row, "the token was revoked")
    if row.expires_at is not None and row.expires_at <= moment:
        raise _rejected(row, "the token expired")
    if row.secret_hash != hashed and (row.previous_valid_until is None or row.previous_valid_until <= moment):
        raise _rejected(row, "the token was rotated; this secret is no longer valid")
    bounds = await _creator_bounds(session, row)
    if bounds is None:
        raise _rejected(row, "the token's creator no longer has access")
    creator_role, creator_grants = bounds
    if _stale_use(row, moment, source):
        row.last_used_at, row.last_used_from = moment, source
    assert row.last_used_at is not None
    ends = [row.last_used_at + LAST_USE_RESOLUTION]
    ends += [t for t in (row.expires_at, row.revoked_at) if t is not None]
    if row.secret_hash != hashed and row.previous_valid_until is not None:
        ends.append(row.previous_valid_until)
    return _principal(row, creator_role, creator_grants), min(ends)


LAST_USE_RESOLUTION = timedelta(minutes=1)


def _stale_use(row: ApiTokenRow, moment: datetime, source: str | None) -> bool:
    """Record a use at most once a minute per address: a write on every request would serialize them all."""
    last = row.last_used_at
    return last is None or row.last_used_from != source or moment - last >= LAST_USE_RESOLUTION


def _principal(row: ApiTokenRow, creator_role: Role, creator_grants: dict[str, Permission]) -> Principal:
    creator_is_admin = creator_role in (Role.OWNER, Role.ADMIN)
    if row.role == Role.ADMIN.value and creator_is_admin:
        return Principal("api_token", row.id, row.name, row.organization_id, Role.ADMIN, user_id=row.created_by)
    grants: dict[str, Permission] = {}
    for env_id, label in row.grants.items():
        held = Permission.ADMIN if creator_is_admin else creator_grants.get(env_id, Permission.NONE)
        grants[env_id] = min(Permission.parse(label), held)
    if row.role == Role.ADMIN.value:
        # An admin token whose creator was demoted keeps at most the creator's grants.
        grants = dict(creator_grants)
    return Principal(
        "api_token", row.id, row.name, row.organization_id, Role.MEMBER, grants=grants, user_id=row.created_by
    )


async def record_rejection(
    platform: Platform,
    row_id: str,
    name: str,
    org_id: str,
    reason: str,
    source: str | None,
    *,
    transport: str = "http",
    request_id: str | None = None,
    user_agent: str | None = None,
) -> None:
    """Audit ``auth.token_rejected`` (outcome denied) in a transaction of its own.

    Called where authentication failed, so the caller's rolled-back session cannot carry the event;
    a failure to write it is logged and the token stays rejected.
    """
    event = recorder.Event(
        organization_id=org_id,
        action="auth.token_rejected",
        outcome="denied",
        transport=transport,
        actor_type="api_token",
        actor_id=row_id,
        actor_name=name,
        resources=[{"type": "api_token", "id": row_id, "name": name}],
        reason=reason,
        request_id=request_id,
        source_address=source,
        user_agent=user_agent,
    )
    try:
        async with platform.db.session() as session:
            await recorder.record(session, event)
    except Exception:
        log.exception("audit write failed for a rejected token", token_id=row_id, request_id=request_id)
