"""The authorization server's settings (``TESTGATE_OAUTH__*``); imports nothing from testgate, to avoid cycles."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr


class OAuthSettings(BaseModel):
    """Lifetimes, client registration, CIMD fetching, signing keys and login backoff."""

    access_token_ttl: int = Field(default=900, ge=60, le=86400, description="seconds an access token lives")
    refresh_token_ttl: int = Field(default=30 * 86400, ge=3600, description="seconds a refresh token lives unused")
    code_ttl: int = Field(default=60, ge=10, le=600, description="seconds an authorization code lives")
    refresh_grace: float = Field(
        default=10.0,
        ge=0,
        le=120,
        description="seconds after a rotation in which the old refresh token is refused without revoking its family",
    )
    clock_leeway: int = Field(default=5, ge=0, le=120, description="seconds of clock skew tolerated on exp/nbf")
    dynamic_registration: bool = Field(default=True, description="RFC 7591 registration at /oauth/register")
    client_metadata_documents: bool = Field(default=True, description="https client ids (CIMD) are fetched")
    allow_private_cimd: bool = Field(
        default=False,
        description="TESTS AND LABS ONLY: fetch client metadata documents from loopback and private addresses",
    )
    ca_bundle: Path | None = Field(default=None, description="extra CA certificates (PEM) trusted for outbound HTTPS")
    cimd_max_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    cimd_timeout: float = Field(default=5.0, gt=0, le=30)
    cimd_cache_ttl: int = Field(default=300, ge=0, le=86400, description="seconds a fetched document is reused")
    key_rotation_days: int = Field(default=30, ge=1, description="a signing key older than this is rotated out")
    key_encryption_secret: SecretStr | None = Field(
        default=None, description="encrypts signing keys at rest in the database (share it across replicas)"
    )
    session_ttl: int = Field(default=8 * 3600, ge=300, description="seconds a sign-in to the authorization pages lasts")
    login_free_failures: int = Field(default=5, ge=1, le=100, description="failed sign-ins before backoff starts")
    login_backoff_base: float = Field(default=2.0, gt=0, description="seconds of the first lockout; doubles each time")
    login_backoff_max: float = Field(default=900.0, gt=0, description="longest lockout, in seconds")
    login_window: float = Field(default=3600.0, gt=0, description="seconds after which old failures are forgotten")
