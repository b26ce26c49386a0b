"""ES256 signing keys: stored in the database (so every replica signs and verifies alike), rotated, published.

A key signs while it is the newest unretired one, and is rotated out after ``key_rotation_days``. A retired
key stays in the JWKS and verifies until every token it signed has expired (``access_token_ttl`` plus the
clock leeway), then ``prune`` deletes it. With ``key_encryption_secret`` set, private keys are stored as
encrypted PKCS#8 (PBES2); without it they rely on the database's own protection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.oauth.settings import OAuthSettings
from testgate.store.base import utcnow
from testgate.store.oauth import SigningKey

ALGORITHM = "ES256"
_private_cache: dict[str, ECKey] = {}


@dataclass(frozen=True)
class KeyMaterial:
    """A freshly generated key: its id (RFC 7638 thumbprint), PKCS#8 PEM, and public JWK."""

    kid: str
    private_pem: str
    public_jwk: dict[str, Any]
    encrypted: bool


def new_key_material(secret: str | None = None) -> KeyMaterial:
    """A new P-256 key (for ES256), its PEM encrypted with ``secret`` when one is given."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    public = {**key.as_dict(private=False), "use": "sig", "alg": ALGORITHM}
    pem = key.as_pem(private=True, password=secret).decode()
    return KeyMaterial(str(key.kid), pem, public, secret is not None)


def _secret(settings: OAuthSettings) -> str | None:
    secret = settings.key_encryption_secret
    return secret.get_secret_value() if secret is not None else None


def private_key(row: SigningKey, settings: OAuthSettings) -> ECKey:
    """The row's private key (decrypted once per process)."""
    cached = _private_cache.get(row.kid)
    if cached is not None:
        return cached
    secret = _secret(settings) if row.encrypted else None
    if row.encrypted and secret is None:
        raise RuntimeError(f"signing key {row.kid} is encrypted; set TESTGATE_OAUTH__KEY_ENCRYPTION_SECRET")
    key = ECKey.import_key(row.private_pem, parameters={"kid": row.kid}, password=secret)
    _private_cache[row.kid] = key
    return key


async def signing_problem(session: AsyncSession, settings: OAuthSettings) -> str | None:
    """Why this process could not sign with the current key (its private key was encrypted with a secret
    this process does not have), or None. Checked at start: such a replica would answer every token request
    with an error while reporting ready."""
    row = await session.scalar(
        select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.created_at.desc()).limit(1)
    )
    if row is None or not row.encrypted:
        return None
    if _secret(settings) is None:
        return "the OAuth signing key in the database is encrypted, and this server has no secret to decrypt it"
    try:
        private_key(row, settings)
    except ValueError:
        return "the OAuth signing key in the database was encrypted with a different secret"
    return None


async def rotate(session: AsyncSession, settings: OAuthSettings, now: datetime | None = None) -> SigningKey:
    """Make a new signing key and retire the others from signing (they keep verifying)."""
    moment = now or utcnow()
    for row in await session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        row.retired_at = moment
    material = new_key_material(_secret(settings))
    row = SigningKey(
        kid=material.kid,
        algorithm=ALGORITHM,
        private_pem=material.private_pem,
        encrypted=material.encrypted,
        public_jwk=material.public_jwk,
        created_at=moment,
    )
    session.add(row)
    await session.flush()
    return row


async def active_key(session: AsyncSession, settings: OAuthSettings) -> SigningKey:
    """The key to sign with now: the newest unretired one, rotated first when missing or too old."""
    row = await session.scalar(
        select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.created_at.desc()).limit(1)
    )
    if row is None or row.created_at <= utcnow() - timedelta(days=settings.key_rotation_days):
        row = await rotate(session, settings)
    return row


def verification_horizon(settings: OAuthSettings) -> timedelta:
    """How long a retired key must keep verifying: the longest life of a token it signed."""
    return timedelta(seconds=settings.access_token_ttl + settings.clock_leeway)


async def prune(session: AsyncSession, settings: OAuthSettings, now: datetime | None = None) -> int:
    """Delete retired keys whose tokens have all expired; returns how many."""
    cutoff = (now or utcnow()) - verification_horizon(settings)
    result = await session.execute(
        delete(SigningKey).where(SigningKey.retired_at.is_not(None), SigningKey.retired_at < cutoff)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def verification_key(session: AsyncSession, settings: OAuthSettings, kid: str) -> ECKey | None:
    """The public key with id ``kid``, if it may still verify tokens."""
    row = await session.get(SigningKey, kid)
    if row is None or row.algorithm != ALGORITHM:
        return None
    if row.retired_at is not None and row.retired_at < utcnow() - verification_horizon(settings):
        return None
    return ECKey.import_key(row.public_jwk)


async def jwks(session: AsyncSession, settings: OAuthSettings) -> dict[str, Any]:
    """RFC 7517 §5 JWK Set of every key that may still verify (never a private member)."""
    await active_key(session, settings)
    cutoff = utcnow() - verification_horizon(settings)
    rows = await session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc()))
    usable = [r for r in rows if r.retired_at is None or r.retired_at >= cutoff]
    return {"keys": [ECKey.import_key(r.public_jwk).as_dict(private=False) for r in usable]}
