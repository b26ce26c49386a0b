"""The authorization server's state: clients, codes, refresh tokens, consents, signing keys, login backoff.

Every secret a client or browser holds (codes, refresh tokens, client secrets) is stored only as a SHA-256
hash. Signing keys live here, not on a replica's disk, so every replica signs and verifies the same tokens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from testgate.store.base import Base, id_column, utcnow


class OAuthClient(Base):
    """A registered (RFC 7591) or metadata-document (CIMD) client; ``client_id`` is what the client sends."""

    __tablename__ = "oauth_clients"

    id: Mapped[str] = id_column()
    client_id: Mapped[str] = mapped_column(String(2000), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # "dcr" or "cimd"
    client_name: Mapped[str] = mapped_column(String(200), default="")
    client_uri: Mapped[str | None] = mapped_column(String(2000), default=None)
    redirect_uris: Mapped[list[Any]] = mapped_column(default=list)
    grant_types: Mapped[list[Any]] = mapped_column(default=list)
    scope: Mapped[str | None] = mapped_column(String(500), default=None)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32), default="none")
    secret_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    fetched_at: Mapped[datetime | None] = mapped_column(default=None)


class AuthorizationCode(Base):
    """A single-use code; ``used_at`` is set once, and ``family_id`` names the tokens its redemption issued."""

    __tablename__ = "oauth_codes"

    id: Mapped[str] = id_column()
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_pk: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    resource: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(String(500))
    redirect_uri: Mapped[str | None] = mapped_column(String(2000), default=None)
    code_challenge: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    family_id: Mapped[str | None] = mapped_column(String(26), default=None)


class RefreshToken(Base):
    """One link of a rotation chain: ``family_id`` ties a grant's tokens, ``parent_id`` the one it replaced."""

    __tablename__ = "oauth_refresh_tokens"

    id: Mapped[str] = id_column()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(26), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(26), default=None)
    client_pk: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    resource: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(String(500))
    access_jti: Mapped[str] = mapped_column(String(64))
    access_expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class RevokedAccessToken(Base):
    """The deny-list of access tokens revoked before their expiry (RFC 7009), kept until they expire."""

    __tablename__ = "oauth_revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


class Consent(Base):
    """What a user let a client do in one environment; revoking it stops the grant's refresh tokens."""

    __tablename__ = "oauth_consents"
    __table_args__ = (UniqueConstraint("user_id", "client_pk", "environment_id"),)

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_pk: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(500))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class SigningKey(Base):
    """An ES256 key: signs while active, verifies until its last token expired after ``retired_at``."""

    __tablename__ = "oauth_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16), default="ES256")
    private_pem: Mapped[str] = mapped_column(Text)
    encrypted: Mapped[bool] = mapped_column(default=False)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(default=None)


class ServerSecret(Base):
    """A random secret shared by replicas (the browser-session and CSRF MAC key)."""

    __tablename__ = "oauth_server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginAttempt(Base):
    """Failed sign-ins counted per key (``account:<sha256 of email>`` or ``source:<address>``)."""

    __tablename__ = "oauth_login_attempts"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
