"""The authorization server's settings (``TESTGATE_OAUTH__*``); imports nothing from testgate, to avoid cycles."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

Grant = Literal["read", "run", "write", "admin"]
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _read_in_dev() -> dict[str, Grant]:
    return {"dev": "read"}


class UpstreamSettings(BaseModel):
    """An upstream OpenID Connect provider people sign in with (``TESTGATE_OAUTH__UPSTREAM__*``).

    Someone the provider vouches for (``email_verified``) is matched to the account with that email, or,
    with ``provision``, added to the default organization with ``default_role`` and ``default_grants``.
    With a provider anyone can sign up at (Google, GitHub), set ``allowed_domains``.
    """

    issuer: str = Field(description="the provider's issuer URL; discovery is fetched from it")
    client_id: str = Field(min_length=1, max_length=500, description="testgate's client id at the provider")
    client_secret: SecretStr = Field(description="testgate's client secret at the provider")
    name: str = Field(default="single sign-on", max_length=80, description="the sign-in button says 'Sign in with …'")
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile"], description="asked of the provider; needs openid"
    )
    provision: bool = Field(default=True, description="add people the provider vouches for who have no account yet")
    default_role: Literal["member", "admin"] = Field(default="member", description="role of provisioned people")
    default_grants: dict[str, Grant] = Field(
        default_factory=_read_in_dev, description="environment slug -> permission for provisioned members"
    )
    allowed_domains: list[str] = Field(default_factory=list, description="email domains let in; empty: any")
    timeout: float = Field(default=10.0, gt=0, le=60, description="seconds for each request to the provider")

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        # OIDC Discovery §3 and RFC 8414 §2: https, no query or fragment (http on loopback for labs and tests).
        parts = urlsplit(value)
        plain = parts.scheme == "http" and parts.hostname in LOOPBACK
        if not (parts.scheme == "https" or plain) or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("the issuer must be an https URL without query or fragment")
        return value  # compared exactly with the ID token's iss (OIDC Core §3.1.3.7 step 2): kept as given

    @field_validator("scopes")
    @classmethod
    def _openid(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("the scopes must include openid (OIDC Core §3.1.2.1)")
        return value

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return [d.strip().lower().lstrip("@") for d in value if d.strip()]


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
    cimd_max_bytes: int = Field(
        default=64 * 1024, ge=1024, le=1024 * 1024, description="largest client metadata document"
    )
    cimd_timeout: float = Field(default=5.0, gt=0, le=30, description="seconds a client metadata fetch may take")
    cimd_cache_ttl: int = Field(default=300, ge=0, le=86400, description="seconds a fetched document is reused")
    key_rotation_days: int = Field(default=30, ge=1, description="a signing key older than this is rotated out")
    key_encryption_secret: SecretStr | None = Field(
        default=None, description="encrypts signing keys at rest in the database (share it across replicas)"
    )
    session_ttl: int = Field(
        default=8 * 3600,
        ge=300,
        description="seconds a browser sign-in lasts: the console's and the authorization pages'",
    )
    login_free_failures: int = Field(default=5, ge=1, le=100, description="failed sign-ins before backoff starts")
    login_backoff_base: float = Field(default=2.0, gt=0, description="seconds of the first lockout; doubles each time")
    login_backoff_max: float = Field(default=900.0, gt=0, description="longest lockout, in seconds")
    login_window: float = Field(default=3600.0, gt=0, description="seconds after which old failures are forgotten")
    upstream: UpstreamSettings | None = Field(default=None, description="sign-in through an OpenID Connect provider")
