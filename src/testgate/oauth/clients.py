"""Clients: dynamic registration (RFC 7591), client ID metadata documents (CIMD), and client authentication.

A client id that is an ``https`` URL is a CIMD client: its document is fetched (``cimd_fetch``), MUST name
that exact URL as its ``client_id``, and is cached for ``cimd_cache_ttl`` in the database (shared by
replicas). Any other client id must have been registered here. CIMD clients are public
(``token_endpoint_auth_method`` ``none``); registered ones may be confidential (``client_secret_basic`` or
``client_secret_post``), their secret stored only as a SHA-256 hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.oauth import redirects, scopes
from testgate.oauth.cimd_fetch import Fetcher, FetchRefused
from testgate.oauth.errors import InvalidClient, OAuthError
from testgate.oauth.settings import OAuthSettings
from testgate.store.base import utcnow
from testgate.store.db import Database
from testgate.store.oauth import OAuthClient

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token")
URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
MAX_REDIRECT_URIS = 20


def digest(secret: str) -> str:
    """The SHA-256 under which a code, refresh token or client secret is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _metadata_error(message: str) -> OAuthError:
    return OAuthError(message, error="invalid_client_metadata")


def _text(document: dict[str, Any], name: str, limit: int) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _metadata_error(f"{name} must be a string of at most {limit} characters")
    return "".join(c for c in value if c.isprintable()).strip() or None


def _web_url(document: dict[str, Any], name: str) -> str | None:
    value = _text(document, name, redirects.MAX_URI)
    if value is not None and (urlsplit(value).scheme not in ("https", "http") or not urlsplit(value).hostname):
        raise _metadata_error(f"{name} must be an http or https URL")
    return value


@dataclass(frozen=True)
class Metadata:
    """Validated client metadata (RFC 7591 §2)."""

    redirect_uris: list[str]
    token_endpoint_auth_method: str
    grant_types: list[str]
    client_name: str | None
    client_uri: str | None
    scope: str | None
    document: dict[str, Any]


def validate(document: dict[str, Any], *, default_method: str) -> Metadata:
    """Check registration or CIMD metadata; ``OAuthError`` with RFC 7591 §3.2.2 codes otherwise."""
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not uris or len(uris) > MAX_REDIRECT_URIS:
        raise OAuthError("redirect_uris must list 1 to 20 URIs", error="invalid_redirect_uri")
    for uri in uris:
        reason = redirects.problem(uri)
        if reason is not None:
            raise OAuthError(reason, error="invalid_redirect_uri")
    method = document.get("token_endpoint_auth_method", default_method)
    if method not in AUTH_METHODS:
        raise _metadata_error(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
    grants = document.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list) or "authorization_code" not in grants or not set(grants) <= set(GRANT_TYPES):
        raise _metadata_error("grant_types must include authorization_code and may add refresh_token only")
    if document.get("response_types", ["code"]) != ["code"]:
        raise _metadata_error('response_types must be ["code"]')
    scope = _text(document, "scope", 500)
    try:
        scope = " ".join(scopes.parse(scope)) if scope else None
    except scopes.UnknownScope as exc:
        raise _metadata_error(str(exc)) from None
    for name in URL_FIELDS:
        _web_url(document, name)
    return Metadata(
        redirect_uris=list(uris),
        token_endpoint_auth_method=str(method),
        grant_types=list(grants),
        client_name=_text(document, "client_name", 200),
        client_uri=_web_url(document, "client_uri"),
        scope=scope,
        document=document,
    )


@dataclass(frozen=True)
class Registered:
    """A new registration and its secret (shown once)."""

    client: OAuthClient
    secret: str | None


async def register(session: AsyncSession, document: dict[str, Any]) -> Registered:
    """RFC 7591 §3: store a client; confidential ones get a secret (RFC 7591 §2 default: client_secret_basic)."""
    meta = validate(document, default_method="client_secret_basic")
    secret = f"tgcs_{secrets.token_urlsafe(32)}" if meta.token_endpoint_auth_method != "none" else None
    kept = {k: v for k, v in document.items() if k not in ("client_id", "client_secret")}
    row = OAuthClient(
        client_id=f"tgc_{secrets.token_urlsafe(18)}",
        kind="dcr",
        client_name=meta.client_name or "",
        client_uri=meta.client_uri,
        redirect_uris=meta.redirect_uris,
        grant_types=meta.grant_types,
        scope=meta.scope,
        token_endpoint_auth_method=meta.token_endpoint_auth_method,
        secret_hash=digest(secret) if secret else None,
        document=kept,
    )
    session.add(row)
    await session.flush()
    return Registered(row, secret)


def registration_response(registered: Registered) -> dict[str, Any]:
    """RFC 7591 §3.2.1: the client information response."""
    row = registered.client
    body: dict[str, Any] = {
        **row.document,
        "client_id": row.client_id,
        "client_id_issued_at": int(row.created_at.timestamp()),
        "redirect_uris": row.redirect_uris,
        "grant_types": row.grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": row.token_endpoint_auth_method,
    }
    if row.scope:
        body["scope"] = row.scope
    if registered.secret is not None:
        body |= {"client_secret": registered.secret, "client_secret_expires_at": 0}
    return body


def is_metadata_url(client_id: str) -> bool:
    """CIMD: an https URL is a client id whose metadata lives at that URL."""
    return client_id.startswith("https://")


def validate_document(client_id: str, document: dict[str, Any]) -> Metadata:
    """A fetched CIMD document: its ``client_id`` MUST equal the URL, and it MUST NOT hold a secret (CIMD §4.1)."""
    if document.get("client_id") != client_id:
        raise InvalidClient("the client metadata document's client_id is not its own URL")
    if "client_secret" in document or "client_secret_expires_at" in document:
        raise InvalidClient("a client metadata document must not contain a client secret")
    try:
        meta = validate(document, default_method="none")
    except OAuthError as exc:
        raise InvalidClient(f"the client metadata document is invalid: {exc.message}") from None
    if meta.token_endpoint_auth_method != "none":
        raise InvalidClient("a client metadata document client must use token_endpoint_auth_method none")
    return meta


async def resolve(db: Database, fetcher: Fetcher, settings: OAuthSettings, client_id: str) -> OAuthClient:
    """The client ``client_id`` names: registered, or described by its (cached, else fetched) CIMD document.

    MUST raise ``InvalidClient`` for an unknown client or a document that is unsafe to fetch or invalid.
    """
    if not client_id or len(client_id) > redirects.MAX_URI:
        raise InvalidClient("the client_id is missing or too long")
    if "\x00" in client_id:  # no client's id holds it, and PostgreSQL cannot compare text holding it
        raise InvalidClient("the client is not registered")
    async with db.session() as session:
        row = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    if not is_metadata_url(client_id):
        if row is None or row.kind != "dcr":
            raise InvalidClient("the client is not registered")
        return row
    if not settings.client_metadata_documents:
        raise InvalidClient("client metadata documents are not accepted by this server")
    fresh_after = utcnow() - timedelta(seconds=settings.cimd_cache_ttl)
    if row is not None and row.fetched_at is not None and row.fetched_at > fresh_after:
        return row
    try:
        document = await fetcher.fetch(client_id)
    except FetchRefused as exc:
        raise InvalidClient(str(exc)) from None
    meta = validate_document(client_id, document)
    return await _store_document(db, client_id, meta)


async def _store_document(db: Database, client_id: str, meta: Metadata) -> OAuthClient:
    values = {
        "client_name": meta.client_name or "",
        "client_uri": meta.client_uri,
        "redirect_uris": meta.redirect_uris,
        "grant_types": meta.grant_types,
        "scope": meta.scope,
        "token_endpoint_auth_method": "none",
        "document": meta.document,
        "fetched_at": utcnow(),
    }
    for _ in range(2):
        try:
            async with db.session() as session:
                row = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
                if row is None:
                    row = OAuthClient(client_id=client_id, kind="cimd", **values)
                    session.add(row)
                else:
                    for name, value in values.items():
                        setattr(row, name, value)
                await session.flush()
                return row
        except IntegrityError:
            continue  # another replica stored it first; update that row instead
    raise InvalidClient("the client metadata document could not be stored")


@dataclass(frozen=True)
class Credentials:
    """What a token or revocation request said about its client (RFC 6749 §2.3.1)."""

    client_id: str
    secret: str | None
    method: str  # "none", "client_secret_basic" or "client_secret_post"


def check_secret(client: OAuthClient, credentials: Credentials) -> None:
    """RFC 6749 §2.3: a confidential client MUST authenticate with its registered method; a public one can't."""
    basic = credentials.method == "client_secret_basic"
    if client.token_endpoint_auth_method == "none":
        if credentials.secret is not None:
            raise InvalidClient("this client is public and has no secret", basic=basic)
        return
    if credentials.method != client.token_endpoint_auth_method or credentials.secret is None:
        raise InvalidClient(f"this client must authenticate with {client.token_endpoint_auth_method}", basic=basic)
    if client.secret_hash is None or not secrets.compare_digest(client.secret_hash, digest(credentials.secret)):
        raise InvalidClient("the client secret is wrong", basic=basic)
