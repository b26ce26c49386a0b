"""The HTTP front door's settings (``TESTGATE_HTTP__*``); imports nothing from testgate, to avoid cycles.

Lists take JSON (``["https://a.example"]``) or a comma-separated string (``https://a.example,https://b.example``).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from limits import parse
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

MiB = 1024 * 1024

StrList = Annotated[list[str], NoDecode]


def _split(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class HttpSettings(BaseModel):
    """Names, limits, rate limits, proxies, metrics and TLS of the HTTP server."""

    public_urls: StrList = Field(
        default_factory=list, description="more URLs this server is reached at, besides public_url (Host and Origin)"
    )
    allowed_hosts: StrList = Field(
        default_factory=list, description="more Host header values accepted (host or host:port; host:* for any port)"
    )
    cors_origins: StrList = Field(
        default_factory=list, description="browser origins allowed cross-origin (CORS); empty: CORS off"
    )
    max_body_bytes: int = Field(
        default=1 * MiB,
        ge=1024,
        description="largest request body, except uploads: MCP endpoints and the REST results upload take "
        "up to 2 x max_upload_bytes",
    )
    request_timeout: float = Field(
        default=60.0, ge=0, description="seconds until a response must start; 0: no limit (streams are exempt)"
    )
    shutdown_grace: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="seconds a stopping server lets open requests finish (waits, log streams) before closing them",
    )
    rate_limit: str = Field(default="600/minute", description="per principal (bearer token); empty: off")
    rate_limit_address: str = Field(default="1200/minute", description="per source address; empty: off")
    rate_limit_auth: str = Field(
        default="20/minute",
        description="per source address on sign-in attempts (posts to login and token endpoints, one-time "
        "links, authorization requests)",
    )
    rate_limit_prefix: str = Field(
        default="testgate", pattern=r"^[A-Za-z0-9_.:-]{1,40}$", description="Redis key prefix (one per deployment)"
    )
    redis_failure: Literal["fail_open", "fail_closed"] = Field(
        default="fail_open", description="Redis unreachable: serve unlimited (warning logged) or answer 503"
    )
    redis_timeout: float = Field(default=0.5, gt=0, le=30, description="seconds a Redis round trip may take")
    trusted_proxies: StrList = Field(
        default_factory=list, description="proxy addresses or CIDRs whose forwarded headers are believed"
    )
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = Field(
        default="x-forwarded-for", description="the one header trusted proxies set (X-Forwarded-For or RFC 7239)"
    )
    metrics_listen: str | None = Field(
        default=None, description="host:port of a separate, unauthenticated /metrics listener; unset: admin token"
    )
    metrics_cache_seconds: float = Field(default=5.0, ge=0, description="seconds the executions gauge is reused")
    tls_cert: Path | None = Field(default=None, description="PEM certificate chain: serve HTTPS")
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert")
    tls_key_password: SecretStr | None = Field(default=None, description="passphrase of an encrypted tls_key")

    @field_validator("public_urls", "allowed_hosts", "cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("rate_limit", "rate_limit_address", "rate_limit_auth")
    @classmethod
    def _rate(cls, value: str) -> str:
        if value.strip():
            parse(value)  # "10/minute", "100 per hour", "5/second;100/hour" is not one limit
        return value.strip()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            # An origin is scheme://host[:port] exactly; "*" would defeat the allowlist.
            if "://" not in origin or origin.rstrip("/") != origin or origin.count("/") != 2:
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        return value

    @field_validator("metrics_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("metrics_listen is host:port, e.g. 127.0.0.1:9464")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> HttpSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self
